from pytools.runloop import run_intervals


class FakeTime:
    def __init__(self, interrupt_at=None):
        self.now = 100.0
        self.sleeps = []
        self.interrupt_at = interrupt_at

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        if self.interrupt_at is not None and len(self.sleeps) == self.interrupt_at:
            self.now += seconds / 2
            raise KeyboardInterrupt
        self.now += seconds


def test_ticks_count_times_on_fixed_deadlines():
    t = FakeTime()
    ticks = []

    def tick():
        ticks.append(t.now)
        t.now += 0.25  # a slow tick must not shift the next deadline

    assert run_intervals(1.0, 3, tick, clock=t.clock, sleep=t.sleep) is False
    assert ticks == [101.0, 102.0, 103.0]
    assert t.sleeps == [1.0, 0.75, 0.75]


def test_interrupt_gives_one_last_tick_and_stops():
    t = FakeTime(interrupt_at=2)
    ticks = []
    assert run_intervals(1.0, None, lambda: ticks.append(t.now),
                         clock=t.clock, sleep=t.sleep) is True
    assert ticks == [101.0, 101.5]


def test_interrupt_during_the_banner_still_gives_the_last_tick():
    t = FakeTime()
    ticks = []

    def banner():
        raise KeyboardInterrupt   # Ctrl-C as the banner goes out

    assert run_intervals(1.0, None, lambda: ticks.append(t.now), clock=t.clock,
                         sleep=t.sleep, on_start=banner) is True
    assert ticks == [100.0] and t.sleeps == []


def test_interrupt_during_a_tick_waits_for_it_then_ends():
    import signal
    import threading
    t = FakeTime()
    ticks = []

    def tick():
        if not ticks:   # Ctrl-C while the first interval is printed
            # to the main thread, as to a tool (a process-wide kill may go to
            # another thread of pytest's, which has no signal blocked)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        ticks.append(t.now)

    assert run_intervals(1.0, 5, tick, clock=t.clock, sleep=t.sleep) is True
    assert ticks == [101.0, 101.0]   # the first printed whole, then the partial one
