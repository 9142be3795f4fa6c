"""The owner's task decisions (leases, pipelining, retries, stealing, cancel), tested without
sockets or processes: each test feeds TaskScheduling events and checks the actions it returns."""
from juno import exceptions as exc
from juno.config import Config
from juno.owner import task_scheduling as sched
from juno.owner.task_scheduling import (CancelLeaseRequest, CancelRunning, CheckIdleLater, CompleteTask,
                                        FailTask, KillWorker, PushTask, RequestLease, RetryTask, ReturnLease,
                                        StealTasks, TaskScheduling)
from juno.owner.task_spec import TaskEntry, make_spec

HOME = "ipc://home-node"
OTHER = "tcp://10.0.0.2:7000"


def make(**config) -> TaskScheduling:
    return TaskScheduling(Config(**config), HOME)


def task(n: int, retries: int = 0, streaming: bool = False) -> TaskEntry:
    task_id = bytes([n]) * 4
    spec = make_spec(task_id=task_id, name=f"t{n}", deps=[], args=("v", b""))
    return TaskEntry(task_id, spec, [task_id + b"r"], [], retries, streaming=streaming)


def submit(s: TaskScheduling, *entries, now=0.0, **opts) -> list:
    out = []
    for entry in entries:
        s.add(entry, {"CPU": 1}, None, opts.get("strategy"), opts.get("max_calls", 0))
        out += s.enqueue(entry, now)
    return out


def of(kind, actions) -> list:
    return [a for a in actions if isinstance(a, kind)]


def grant(s: TaskScheduling, request: RequestLease, n: int, node_manager=HOME, now=0.0) -> list:
    value = (f"lease{n}", f"ipc://worker{n}", b"w%d" % n, [], {"CPU": 1}, node_manager)
    return s.lease_reply(request.key_state, request.rid, True, value, request.hops, now)


def leased(s: TaskScheduling, *entries, **opts):
    """Submit the tasks and grant the first lease they ask for: (lease, actions of the grant)."""
    request = of(RequestLease, submit(s, *entries, **opts))[0]
    actions = grant(s, request, 1)
    return s.leases["lease1"], actions


def pushed(actions) -> list:
    return [a.entry for a in of(PushTask, actions)]


# ---------------------------------------------------------------------- leases and pipelining

def test_a_task_asks_its_node_for_a_lease_and_is_pushed_when_granted():
    s = make()
    t = task(1)
    actions = submit(s, t)
    assert [(type(a), a.node_manager, a.hops, a.head) for a in actions] == [(RequestLease, HOME, 0, t)]
    actions = grant(s, actions[0], 1)
    lease = s.leases["lease1"]
    assert actions == [PushTask(t, lease)]
    assert t.pushed and t.lease_id == "lease1" and list(lease.in_flight) == [t.task_id]


def test_pipelining_fills_a_lease_up_to_the_in_flight_limit_and_asks_for_more_workers():
    s = make(max_tasks_in_flight_per_worker=3, max_pending_lease_requests=4)
    tasks = [task(i) for i in range(5)]
    requests = of(RequestLease, submit(s, *tasks))
    assert len(requests) == 2  # five waiting tasks, three a worker: two workers wanted
    actions = grant(s, requests[0], 1)
    assert pushed(actions) == tasks[:3]
    assert len(s.leases["lease1"].in_flight) == 3
    # The two still queued and the two behind the running one want workers of their own.
    assert len(s.keys[tasks[0].key].queue) == 2
    assert not of(CancelLeaseRequest, actions)


def test_a_new_lease_takes_the_next_task_before_a_busy_one_takes_more():
    s = make(max_tasks_in_flight_per_worker=2)
    tasks = [task(i) for i in range(3)]
    requests = of(RequestLease, submit(s, *tasks))
    grant(s, requests[0], 1)
    actions = grant(s, requests[1], 2)
    assert pushed(actions) == [tasks[2]]
    assert s.leases["lease2"].in_flight == {tasks[2].task_id: None}


def test_spread_and_max_calls_push_one_task_per_worker():
    for opts in ({"strategy": "SPREAD"}, {"max_calls": 1}):
        s = make(max_tasks_in_flight_per_worker=4)
        tasks = [task(i) for i in range(3)]
        requests = of(RequestLease, submit(s, *tasks, **opts))
        assert pushed(grant(s, requests[0], 1)) == tasks[:1]


def test_no_tasks_left_cancels_the_lease_requests_still_pending():
    s = make(max_tasks_in_flight_per_worker=1)
    t1, t2 = task(1), task(2)
    requests = of(RequestLease, submit(s, t1, t2))
    assert len(requests) == 2
    assert pushed(grant(s, requests[0], 1)) == [t1]
    lease = s.leases["lease1"]
    # t1 finishes first: t2 takes its worker, and the second worker is no longer wanted.
    actions = s.task_result(t1, [("v", b"1")], False, False, 1.0)
    assert actions == [CompleteTask(t1, [("v", b"1")]), PushTask(t2, lease), CancelLeaseRequest(HOME, requests[1].rid)]


def test_a_lease_granted_with_nothing_to_run_goes_straight_back():
    s = make()
    t = task(1)
    requests = of(RequestLease, submit(s, t))
    s.cancel(t, force=False, recursive=False)
    actions = grant(s, requests[0], 1)
    assert of(ReturnLease, actions) and "lease1" not in s.leases


def test_a_lease_is_returned_once_it_stayed_idle():
    s = make(lease_idle_s=0.01)
    t = task(1)
    lease, _ = leased(s, t)
    actions = s.task_result(t, [("v", b"1")], False, False, now=5.0)
    assert actions == [CompleteTask(t, [("v", b"1")]), CheckIdleLater("lease1")]
    assert s.idle_timer("lease1", now=5.001) == [CheckIdleLater("lease1")]  # used too recently: ask again
    assert s.idle_timer("lease1", now=5.01) == [ReturnLease(lease)]
    assert "lease1" not in s.leases and not s.keys[t.key].leases
    assert s.idle_timer("lease1", now=6.0) == []  # already gone


def test_an_idle_timer_keeps_a_lease_that_got_work_again():
    s = make(lease_idle_s=0.01)
    t1, t2 = task(1), task(2)
    lease, _ = leased(s, t1)
    s.task_result(t1, [("v", b"1")], False, False, now=5.0)
    assert pushed(submit(s, t2, now=5.005)) == [t2]
    assert s.idle_timer("lease1", now=6.0) == []
    assert "lease1" in s.leases


def test_a_worker_that_reached_max_calls_is_forgotten_not_returned():
    s = make()
    t = task(1)
    leased(s, t, max_calls=1)
    actions = s.task_result(t, [("v", b"1")], False, True, now=1.0)
    assert actions == [CompleteTask(t, [("v", b"1")])]
    assert not s.leases


# ---------------------------------------------------------------------- spillback

def test_a_spillback_asks_the_named_node_counting_the_hop():
    s = make()
    requests = of(RequestLease, submit(s, task(1)))
    ks = requests[0].key_state
    actions = s.lease_reply(ks, requests[0].rid, True, ("spillback", "node2", OTHER), 0, 0.0)
    assert [(a.node_manager, a.hops) for a in actions] == [(OTHER, 1)]
    actions = s.lease_reply(ks, actions[0].rid, True, ("spillback", "node3", "tcp://n3"), 1, 0.0)
    assert [(a.node_manager, a.hops) for a in actions] == [("tcp://n3", 2)]
    # The chain ends where the node grants (runtime/node/cluster_policy.py caps the hops at MAX_HOPS).
    assert pushed(grant(s, actions[0], 1, node_manager="tcp://n3")) == [requests[0].head]


def test_a_spillback_to_a_node_that_died_starts_over_at_home():
    s = make()
    requests = of(RequestLease, submit(s, task(1)))
    assert s.node_died(OTHER) == []
    actions = s.lease_reply(requests[0].key_state, requests[0].rid, True, ("spillback", "n2", OTHER), 2, 0.0)
    assert [(a.node_manager, a.hops) for a in actions] == [(HOME, 0)]


def test_a_spillback_nobody_needs_any_more_is_dropped():
    s = make()
    t = task(1)
    requests = of(RequestLease, submit(s, t))
    s.cancel(t, force=False, recursive=False)
    assert s.lease_reply(requests[0].key_state, requests[0].rid, True, ("spillback", "n2", OTHER), 0, 0.0) == []


def test_a_refused_lease_fails_the_queued_tasks_with_its_error():
    s = make()
    t1, t2 = task(1), task(2)
    requests = of(RequestLease, submit(s, t1, t2))
    error = exc.TaskUnschedulableError("no such node")
    actions = s.lease_reply(requests[0].key_state, requests[0].rid, False, error, 0, 0.0)
    assert actions == [FailTask(t1, error), FailTask(t2, error)]


# ---------------------------------------------------------------------- retries

def test_a_retryable_error_is_retried_until_the_retries_run_out_then_it_completes_with_it():
    s = make()
    t = task(1, retries=2)
    leased(s, t)
    error = [("v", b"error")]
    for left in (1, 0):
        actions = s.task_result(t, error, True, False, now=1.0)
        assert actions[0] == RetryTask(t, "TASK_EXECUTION_EXCEPTION", "the task raised an exception it is retried for",
                                       None)
        assert t.retries_left == left
        assert pushed(actions) == [t]  # the lease is free again: it runs there
    actions = s.task_result(t, error, True, False, now=1.0)
    assert actions[0] == CompleteTask(t, error)
    assert t.retries_left == 0


def test_an_error_retry_exceptions_does_not_allow_completes_at_once():
    # The worker matches the error against retry_exceptions; ``retryable`` is its verdict.
    s = make()
    t = task(1, retries=3)
    leased(s, t)
    actions = s.task_result(t, [("v", b"error")], False, False, now=1.0)
    assert actions[0] == CompleteTask(t, [("v", b"error")])
    assert t.retries_left == 3


def test_infinite_retries_never_run_out():
    s = make()
    t = task(1, retries=-1)
    leased(s, t)
    for _ in range(5):
        assert of(RetryTask, s.task_result(t, [("v", b"e")], True, False, now=1.0))
    assert t.retries_left == -6  # counts down forever, never reaching 0


def test_a_cancelled_task_is_not_retried():
    s = make()
    t = task(1, retries=3)
    leased(s, t)
    s.cancel(t, force=False, recursive=False)
    assert s.task_result(t, [("v", b"e")], True, False, now=1.0)[0] == CompleteTask(t, [("v", b"e")])


def test_a_worker_death_retries_the_running_task_and_requeues_those_behind_it():
    s = make(max_tasks_in_flight_per_worker=3)
    running, behind, last = task(1, retries=1), task(2, retries=1), task(3, retries=1)
    lease, _ = leased(s, running, behind, last)
    assert list(lease.in_flight) == [running.task_id, behind.task_id, last.task_id]
    actions = s.worker_died("lease1", "exit code 1", None, 0, now=1.0)
    assert actions[0] == RetryTask(running, "WORKER_DIED", "exit code 1", None)
    assert running.retries_left == 0
    # Those behind it never started: requeued in order without spending a retry, and a lease is asked for.
    assert list(s.keys[running.key].queue) == [running, behind, last]
    assert (behind.retries_left, last.retries_left) == (1, 1)
    assert not any(e.pushed for e in (running, behind, last))
    assert s.keys[running.key].pending_requests  # a lease is asked for (already, when the lease filled up)
    assert not s.leases


def test_a_worker_death_without_retries_left_fails_the_running_task():
    s = make()
    for kind, error in ((None, exc.WorkerCrashedError), ("oom", exc.OutOfMemoryError),
                        ("node_died", exc.NodeDiedError)):
        t = task(1)
        lease, _ = leased(s, t)
        actions = s.worker_died(lease.lease_id, "killed", kind, 0, now=1.0)
        assert [type(a.error) for a in of(FailTask, actions)] == [error]
        s.entries.clear()
        s.keys.clear()


def test_an_oom_kill_retries_with_a_warning_for_the_user():
    s = make()
    t = task(1, retries=2)
    leased(s, t)
    (retry,) = of(RetryTask, s.worker_died("lease1", "node memory at 97%", "oom", 0, now=1.0))
    assert retry.cause == "OUT_OF_MEMORY"
    assert "killed due to memory use: node memory at 97%" in retry.warning
    assert "(1 retries left after this one)" in retry.warning


def test_a_streaming_task_that_yielded_items_is_not_retried_after_its_worker_died():
    s = make()
    t = task(1, retries=3, streaming=True)
    leased(s, t)
    assert s.running_stream("lease1") == t.task_id
    actions = s.worker_died("lease1", "crash", None, 2, now=1.0)
    assert [type(a.error) for a in of(FailTask, actions)] == [exc.WorkerCrashedError]
    assert s.running_stream("lease1") is None


def test_a_node_death_hands_back_its_leases_and_asks_again_for_requests_waiting_there():
    s = make(max_tasks_in_flight_per_worker=1)
    t1, t2 = task(1, retries=1), task(2, retries=1)
    requests = of(RequestLease, submit(s, t1, t2))
    ks = requests[0].key_state
    assert pushed(grant(s, requests[0], 1, node_manager=OTHER)) == [t1]
    # The other request is spilled to the node that is about to die.
    (at_other,) = s.lease_reply(ks, requests[1].rid, True, ("spillback", "n2", OTHER), 0, 0.0)
    assert ks.pending_requests == {at_other.rid: OTHER}
    (lease,) = s.node_died(OTHER)
    actions = s.worker_died(lease.lease_id, "node gone", "node_died", 0, now=1.0)
    assert of(RetryTask, actions)[0].cause == "NODE_DIED"
    assert list(ks.queue) == [t1, t2]
    actions = s.lease_requests_lost(OTHER, now=1.0)
    assert at_other.rid not in ks.pending_requests
    assert len(ks.pending_requests) == 2
    assert {a.node_manager for a in of(RequestLease, actions)} == {HOME}


# ---------------------------------------------------------------------- stealing

def test_an_idle_lease_steals_the_unstarted_tasks_of_a_busy_one():
    s = make(max_tasks_in_flight_per_worker=4)
    tasks = [task(i) for i in range(4)]
    (request,) = of(RequestLease, submit(s, *tasks))
    busy = grant(s, request, 1)
    assert pushed(busy) == tasks
    donor = s.leases["lease1"]
    actions = grant(s, of(RequestLease, busy)[0], 2)
    assert of(StealTasks, actions) == [StealTasks(donor)]
    assert not of(ReturnLease, actions)  # kept while the steal is under way
    assert of(CheckIdleLater, actions) == [CheckIdleLater("lease2")]
    # The worker hands back the three it had not started: they go to the idle lease.
    actions = s.tasks_stolen("lease1", [t.task_id for t in tasks[1:]], now=1.0)
    assert pushed(actions) == tasks[1:]
    assert [len(lease.in_flight) for lease in s.leases.values()] == [2, 2]
    assert s.leases["lease2"].in_flight and not donor.stealing


def test_a_steal_is_asked_once_while_under_way():
    s = make(max_tasks_in_flight_per_worker=4)
    tasks = [task(i) for i in range(3)]
    (request,) = of(RequestLease, submit(s, *tasks))
    second = of(RequestLease, grant(s, request, 1))[0]
    actions = grant(s, second, 2)
    assert of(StealTasks, actions)
    assert not of(StealTasks, grant(s, of(RequestLease, actions)[0], 3))


def test_a_stolen_task_that_was_cancelled_meanwhile_fails():
    s = make(max_tasks_in_flight_per_worker=4)
    t1, t2 = task(1), task(2)
    leased(s, t1, t2)
    s.cancel(t2, force=False, recursive=False)
    actions = s.tasks_stolen("lease1", [t2.task_id], now=1.0)
    assert [(a.entry, type(a.error)) for a in of(FailTask, actions)] == [(t2, exc.TaskCancelledError)]


# ---------------------------------------------------------------------- cancel

def test_cancelling_a_queued_task_fails_it_at_once():
    s = make()
    t1, t2 = task(1), task(2)
    submit(s, t1, t2)
    actions = s.cancel(t2, force=True, recursive=False)
    assert [(type(a), a.entry, type(a.error)) for a in actions] == [(FailTask, t2, exc.TaskCancelledError)]
    assert list(s.keys[t1.key].queue) == [t1]


def test_cancelling_a_task_waiting_for_its_arguments_forgets_the_wait():
    s = make()
    t = task(1)
    s.add(t, {"CPU": 1}, None, None, 0)
    s.wait_for_deps(t.task_id, 2)
    assert of(FailTask, s.cancel(t, force=False, recursive=False))
    assert s.dep_ready(t.task_id) is None


def test_a_task_is_queued_when_its_last_argument_is_ready():
    s = make()
    t = task(1)
    s.add(t, {"CPU": 1}, None, None, 0)
    s.wait_for_deps(t.task_id, 2)
    assert s.dep_ready(t.task_id) is None
    assert s.dep_ready(t.task_id) is t


def test_cancelling_a_running_task_asks_its_worker_and_kills_it_only_with_force():
    s = make(max_tasks_in_flight_per_worker=2)
    running, behind = task(1), task(2)
    lease, _ = leased(s, running, behind)
    assert s.cancel(running, force=False, recursive=True) == [CancelRunning(lease, running.task_id, False, True)]
    assert s.cancel(running, force=True, recursive=False) == [
        CancelRunning(lease, running.task_id, True, False),
        KillWorker(lease, "the task was cancelled with force=True")]
    # Queued behind the running one on the worker: the worker drops it, nobody is killed.
    assert s.cancel(behind, force=True, recursive=False) == [CancelRunning(lease, behind.task_id, True, False)]
    assert running.cancelled and running.force_cancelled


def test_scheduling_key_separates_retriable_tasks_and_shapes():
    assert sched.scheduling_key({"CPU": 1}, None, None) != sched.scheduling_key({"CPU": 1}, None, None,
                                                                                 retriable=False)
    assert sched.scheduling_key({"CPU": 1, "GPU": 1}, None, None) == sched.scheduling_key({"GPU": 1, "CPU": 1},
                                                                                         None, None)
