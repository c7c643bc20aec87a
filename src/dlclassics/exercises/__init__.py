"""The notebooks' exercises: one module per notebook, one `check_<name>(answer)` per exercise.

A check never raises on the learner's answer: it prints "pass" or what is wrong with a hint, and
returns whether the answer passed, so the tests can check that each solution passes and that an
empty or wrong answer fails. An unfilled answer is `None` (the exercise cell's starting value).
"""


def verdict(problems: list[str], hint: str) -> bool:
    """Print "pass", or each problem and the hint; return whether there were no problems."""
    if not problems:
        print("pass")
        return True
    for problem in problems:
        print(f"not yet: {problem}")
    print(f"hint: {hint}")
    return False


def missing(answer: object, what: str, hint: str) -> bool:
    """For an unfilled answer (None): say what is missing, and fail without raising."""
    if answer is None:
        print(f"not yet: fill in {what}")
        print(f"hint: {hint}")
        return True
    return False
