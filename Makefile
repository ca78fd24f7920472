# Two commands do all setup on a fresh machine: `make book` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: setup system book test bench clean

setup: $(STAMP) system

# Reinstall only when the project's declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Debian packages: Chromium checks the rendered book, bubblewrap sandboxes student code.
system:
	@if ! command -v chromium >/dev/null || ! command -v bwrap >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium bubblewrap; \
	fi

# The website (_build/html), then the same pages as one page (_build/singlehtml) printed to
# _build/html/cnn-course.pdf, then the course download _build/html/cnn-course.zip. Each chapter
# is executed once: the second build takes its outputs from jupyter-cache, which keys on a
# notebook's code only, so it is emptied whenever the engine changes. Warnings are errors. One
# BLAS thread: the chapters' networks are tiny, and threads spinning on tiny GEMMs cost time.
JB := OPENBLAS_NUM_THREADS=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
_build/.engine-stamp: $(shell find cnnlib -name '*.py') pyproject.toml
	rm -rf _build/.jupyter_cache
	mkdir -p _build && touch $@

book: setup _build/.engine-stamp
	$(JB) --all
	$(JB) --builder singlehtml
	$(PY) book/pdf.py _build/singlehtml _build/html/cnn-course.pdf
	$(PY) book/download.py _build/html/cnn-course.zip

# --nbval-lax executes every chapter notebook (they are stored without outputs); loadfile keeps
# each notebook on one worker. The workers (and the book build among them) already fill the
# cores, so each process gets one BLAS thread: threads spinning on tiny GEMMs in several
# processes at once made training cells ten times slower. The grader's tests enforce real
# wall-clock limits on student code, so they run second, with the machine to themselves.
GRADER_TESTS := tests/test_grader.py tests/test_grader_integrity.py tests/test_grader_assignments.py \
                tests/test_grader_isolation.py tests/test_grader_workflow.py
test: setup
	$(VENV)/bin/ruff check .
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax $(addprefix --ignore=,$(GRADER_TESTS))
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile $(GRADER_TESTS)

bench: setup
	$(PY) -m cnnlib.bench

clean:
	rm -rf _build .pytest_cache
