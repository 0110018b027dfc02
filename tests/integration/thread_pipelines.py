"""A step that logs from the threads it starts, from a pool, in runs of its own, and too late."""

import threading
from concurrent.futures import ThreadPoolExecutor, wait

import mlflow
from zenml import pipeline, step

WARM_POOL = ThreadPoolExecutor(2, thread_name_prefix="warm")
"""A pool whose workers exist before the step: its tasks are attributed when submitted."""
RELEASE_LATE = threading.Event()
LATE_LOGGED = threading.Event()
RELEASE_AFTER_LAST = threading.Event()
AFTER_LAST: list[threading.Thread] = []
"""The thread that logs once the process's last step ended; the errors it got."""
AFTER_LAST_ERRORS: list[BaseException] = []


def points(key: str, count: int) -> None:
    """Log `count` points of `key`."""
    for i in range(count):
        mlflow.log_metric(key, i, step=i)


def left_open() -> None:
    """Start a nested run in a thread and leave it open: the step's end ends it."""
    run = mlflow.start_run(nested=True, run_name="left_open")
    mlflow.log_metric("in_left_open", 1.0)
    mlflow.set_tag("kind", "left_open")
    assert run.info.run_id


def late() -> None:
    """Outlive the step; log once the next pipeline's step says so."""
    RELEASE_LATE.wait(60)
    points("late", 5)
    LATE_LOGGED.set()


def after_last() -> None:
    """Outlive the process's last step; log once the test says so."""
    RELEASE_AFTER_LAST.wait(60)
    try:
        points("after_last", 5)
        mlflow.set_tag("after_last", "x")
    except Exception as error:  # the test asserts there is none
        AFTER_LAST_ERRORS.append(error)


@mlflow.trace
def traced(x: int) -> int:
    """A traced function."""
    return x + 1


@step(experiment_tracker=True)
def log_from_threads(release: bool) -> None:
    """Log 50 points here, 450 from threads and pools, open user runs, trace, start a late thread."""
    if release:  # the previous run's late thread logs while this step runs
        RELEASE_LATE.set()
        assert LATE_LOGGED.wait(60)
    points("own", 50)
    thread = threading.Thread(target=points, args=("thread", 100))
    thread.start()
    thread.join()
    wait([WARM_POOL.submit(points, f"warm_{k}", 25) for k in range(4)])
    with ThreadPoolExecutor(4) as fresh:
        list(fresh.map(points, [f"fresh_{k}" for k in range(4)], [25] * 4))
    callback = threading.Timer(0.01, points, args=("timer", 50))
    callback.start()
    callback.join()
    with mlflow.start_run(run_name="users_own") as own:  # no nested=True: nested anyway
        mlflow.log_metric("in_own", 1.0)
    mlflow.set_tag("users_own", own.info.run_id)
    opener = threading.Thread(target=left_open)
    opener.start()
    opener.join()
    traced(1)
    with mlflow.start_span("span"):
        pass
    if not release:
        threading.Thread(target=late, daemon=True).start()
    else:
        AFTER_LAST.append(threading.Thread(target=after_last, daemon=True))
        AFTER_LAST[-1].start()


@pipeline(enable_cache=False)
def threaded(release: bool = False) -> None:
    log_from_threads(release=release)
