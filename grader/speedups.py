"""Per-process shortcuts for the grader's own processes (never the student's kernel).

Each one removes work that nbgrader and its dependencies repeat for every
submission, without changing what they compute.  Measured on the course machine
(2 cores), per autograded submission unless said otherwise:

- ``skip_format_grammars``: ``import jsonschema`` builds about 40 parsers for the
  optional IRI format checks of ``rfc3987_syntax`` (~0.9 s per process start);
  neither nbformat's nor nbgrader's schemas use those formats, so the package is
  not loaded and jsonschema leaves the two IRI formats unchecked.
- ``reuse_gradebook_connections``: nbgrader opens its gradebook about ten times
  per submission, each time with a new SQLAlchemy engine (so every query is
  compiled again), an inspection of the schema and a course lookup (~50 ms).
  After the first open of a given database in this process the engine is reused
  and the schema checks are skipped.  Only for databases no other process writes
  (a worker's private gradebook), which are also written without waiting for the
  disk.
- ``cache_metadata_schema``: nbgrader validates the metadata of each cell with
  ``jsonschema.validate``, which first validates the schema itself (~30 ms).  The
  validator is built once per schema.

All of them are pinned to the versions they were written against and do
nothing on others.
"""
from __future__ import annotations

import json
import sys


def skip_format_grammars() -> None:
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def _nbgrader_09() -> bool:
    try:
        import nbgrader
    except ImportError:
        return False
    return str(getattr(nbgrader, "__version__", "")).startswith("0.9.")


def reuse_gradebook_connections(scratch: bool = False) -> bool:
    """``scratch``: the gradebooks this process opens are throw-away copies (a worker's),
    so SQLite need not wait for the disk at each of nbgrader's commits (about 20 per
    submission, ~0.8 ms each): ``synchronous=OFF``, rollback journal in memory."""
    if not _nbgrader_09():
        return False
    import nbgrader.api as api
    from sqlalchemy import event
    from sqlalchemy.orm import scoped_session, sessionmaker

    Gradebook = api.Gradebook
    if getattr(Gradebook, "_grader_reuses_engines", False):
        return True
    engines: dict[tuple[str, str], object] = {}
    original_init, original_close = Gradebook.__init__, Gradebook.close
    if scratch:
        original_create_engine = api.create_engine

        def create_engine(url, *args, **kwargs):
            engine = original_create_engine(url, *args, **kwargs)
            if str(url).startswith("sqlite"):
                event.listen(engine, "connect", _scratch_pragmas)
            return engine

        api.create_engine = create_engine

    def __init__(self, db_url, course_id="default_course", authenticator=None):
        engine = engines.get((db_url, course_id))
        if engine is None:
            original_init(self, db_url, course_id, authenticator)
            engines[(db_url, course_id)] = self.engine
        else:
            self.engine = engine
            self.db = scoped_session(sessionmaker(autoflush=True, bind=engine, future=True))
            self.course_id = course_id
            self.authenticator = authenticator
        self._shared_engine = True

    def close(self):
        if getattr(self, "_shared_engine", False):
            self.db.remove()  # the connection goes back to the engine's pool
        else:
            original_close(self)

    Gradebook.__init__ = __init__
    Gradebook.close = close
    Gradebook._grader_reuses_engines = True
    return True


def _scratch_pragmas(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


class _CachedSchemaValidation:
    """Stands in for the ``jsonschema`` module inside nbgrader.nbgraderformat.common."""

    def __init__(self, jsonschema):
        self._jsonschema = jsonschema
        self._validators: dict[str, object] = {}

    def __getattr__(self, name):
        return getattr(self._jsonschema, name)

    def validate(self, instance, schema, *args, **kwargs):
        js = self._jsonschema
        if args or kwargs:
            return js.validate(instance, schema, *args, **kwargs)
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            cls = js.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[key] = cls(schema)
        error = js.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error


def cache_metadata_schema() -> bool:
    if not _nbgrader_09():
        return False
    import jsonschema
    import nbgrader.nbgraderformat.common as common

    if not isinstance(common.jsonschema, _CachedSchemaValidation):
        common.jsonschema = _CachedSchemaValidation(jsonschema)
    return True
