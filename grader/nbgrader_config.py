"""nbgrader configuration of the course (the course directory is this folder).

`python -m grader ...` loads this file from any working directory; plain
`nbgrader ...` commands load it when run from this folder.
"""
import os

c = get_config()  # noqa: F821 (provided by traitlets)
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = here
c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".work"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# nbgrader restores each test and read-only cell's content; grader/order.py its place too.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "grader.order.RestoreOrder",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Autograding runs student code in the sandboxed kernel (grader/sandbox.py) with a
# per-cell timeout and a per-notebook budget (grader/execute.py).
c.Autograde.autograde_preprocessors = [
    "grader.execute.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Late submissions (a due date is set with `python -m grader release A --due ...`):
# each notebook of a late submission loses 10% of its autograded points per started
# day late (grader/due.py), at most all of them.
c.AssignLatePenalties.plugin_class = "grader.due.PerDayPenalty"
c.PerDayPenalty.percent_per_day = 10
c.PerDayPenalty.grace_minutes = 0
# The course's time zone: a --due date or a zip file date without an offset is read in it.
c.NbGraderAPI.timezone = "UTC"

c.SandboxedExecute.timeout = 30            # seconds per cell
c.SandboxedExecute.notebook_budget = 300   # seconds per notebook, all cells together
c.SandboxedExecute.interrupt_grace = 3
c.SandboxKernelManager.sandbox = "auto"    # "bwrap" to refuse grading without bubblewrap
c.SandboxKernelManager.memory_mb = 2048
c.SandboxKernelManager.nproc = 64
c.SandboxKernelManager.fsize_mb = 256

# Feedback: no hidden test code, no traceback that quotes it, math rendered offline
# (grader/feedback.py rewrites the MathJax script to a local copy).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
    "grader.feedback.SanitizeTestOutputs",
]
