"""HintPump: a remote broker's inbox hints, one per partition per window, sent off the MLLP
listener's loop; never dropped, only gathered."""

from __future__ import annotations

import threading
import time

from s117hub.worker import HintPump


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[int] = []
        self.fail_first = fail_first
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, key: int) -> None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            if self.fail_first:
                self.fail_first -= 1
                raise ConnectionError("broker down")
            self.sent.append(key)


def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_rows_stored_in_one_window_share_one_hint_per_partition() -> None:
    sent = Recorder()
    pump = HintPump(sent, window=0.2)
    for key in [3, 1, 3, 3, 1, 7] * 50:
        pump.notify(key)
    wait_for(lambda: len(sent.sent) == 3)
    time.sleep(0.3)
    assert sent.sent == [1, 3, 7]
    assert sent.threads == {"hint-pump"}  # not the caller's thread (the event loop)
    pump.close()


def test_a_row_stored_after_a_hint_went_gets_its_own() -> None:
    sent = Recorder()
    pump = HintPump(sent, window=0.01)
    pump.notify(5)
    wait_for(lambda: sent.sent == [5])
    pump.notify(5)
    wait_for(lambda: sent.sent == [5, 5])
    pump.close()


def test_close_sends_what_is_still_gathering() -> None:
    sent = Recorder()
    pump = HintPump(sent, window=30.0)  # the window would not end before the test does
    pump.notify(2)
    pump.notify(9)
    started = time.monotonic()
    pump.close()
    assert sorted(sent.sent) == [2, 9]
    assert time.monotonic() - started < 1.0


def test_a_failed_send_is_logged_and_the_pump_goes_on() -> None:
    sent = Recorder(fail_first=1)
    pump = HintPump(sent, window=0.01)
    pump.notify(4)  # lost to the broker: the sweeper's to re-issue
    wait_for(lambda: sent.fail_first == 0)
    pump.notify(6)
    wait_for(lambda: sent.sent == [6])
    pump.close()


def test_nothing_started_until_used() -> None:
    def pumps() -> int:
        return sum(t.name == "hint-pump" for t in threading.enumerate())

    before = pumps()
    pump = HintPump(Recorder(), window=0.01)
    assert pumps() == before
    pump.notify(1)
    assert pumps() == before + 1
    pump.close()
    assert pumps() == before
