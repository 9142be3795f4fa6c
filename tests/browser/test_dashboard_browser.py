"""The dashboard as a user sees it: JupyterLab's Juno sidebar and the standalone page,
in headless Chromium, over a real cluster doing real work.

Each test saves a screenshot under test-artifacts/ (CI keeps the folder).
"""
from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from lab_harness import LabServer, browser, screenshot

UI_TIMEOUT_MS = 30_000


def _eventually(predicate, timeout: float, message: str) -> None:
    """Polls ``predicate`` (page reads raise while the panel re-renders) until it holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - a re-rendered element; try again
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{message} within {timeout:g} s" + (f" (last error: {last})" if last else ""))


def _status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _count(page, state: str) -> int:
    text = page.locator(f"#juno-sidebar [data-juno=task-count][data-state={state}]").first.inner_text()
    return int(re.sub(r"[^0-9]", "", text) or "0")


def _open_sidebar(page, lab: LabServer) -> None:
    page.goto(lab.url("lab"), timeout=60_000)
    # The Juno tab sits in the left side bar; opening it shows the panel.
    tab = page.locator(".jp-SideBar.jp-mod-left [data-id=juno-sidebar]")
    tab.wait_for(timeout=60_000)
    if not page.locator("#juno-sidebar").is_visible():  # a restored layout may have it open already
        tab.click()
    page.locator("#juno-sidebar").wait_for(state="visible", timeout=UI_TIMEOUT_MS)


@pytest.fixture
def lab_for_cluster(tmp_path, shutdown_only):
    """A local cluster (this test process is its driver) and JupyterLab pointed at it by
    JUNO_ADDRESS, as a user who exported the address before `jupyter lab` would have it."""
    import juno

    ctx = juno.init(num_cpus=2)
    lab = LabServer(tmp_path, env={"JUNO_ADDRESS": ctx.address})
    try:
        yield juno, ctx, lab
    finally:
        lab.stop()


def test_sidebar_follows_work_and_kills_an_actor(lab_for_cluster):
    juno, ctx, lab = lab_for_cluster
    @juno.remote
    class Keeper:
        def ping(self):
            print("keeper says hello")
            return "pong"

    @juno.remote(num_cpus=1)
    def hold(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.05)
        return 1

    with browser() as page:
        _open_sidebar(page, lab)
        status = page.locator("[data-juno=connection-status]")
        status.filter(has_text="Connected").wait_for(timeout=UI_TIMEOUT_MS)
        assert ctx.address in page.locator("[data-juno=address]").first.inner_text() + \
            (page.locator("[data-juno=address]").first.get_attribute("value") or "")

        node_id = juno.get_runtime_context().get_node_id()
        node = page.locator(f"[data-juno=node-row][data-node-id='{node_id}']")
        node.wait_for(timeout=UI_TIMEOUT_MS)
        cpu = node.locator("[data-juno=bar][data-resource=CPU]")
        assert float(cpu.get_attribute("data-total")) == 2.0
        assert float(cpu.get_attribute("data-used")) == 0.0
        finished_before = _count(page, "FINISHED")

        # Work starts: two tasks hold both CPUs until released, and an actor appears.
        gate = lab.root / "release"
        refs = [hold.remote(str(gate)) for _ in range(2)]
        keeper = Keeper.options(name="keeper", num_cpus=0).remote()
        assert juno.get(keeper.ping.remote(), timeout=60) == "pong"
        actor_id = keeper._actor_id.hex()
        _eventually(lambda: _count(page, "RUNNING") >= 2, timeout=30,
                           message="the panel never showed the two running tasks")
        _eventually(lambda: float(cpu.get_attribute("data-used")) == 2.0, timeout=30,
                           message="the node's CPU bar never showed both CPUs in use")
        screenshot(page, "sidebar-busy.png")
        row = page.locator(f"[data-juno=actor-row][data-actor-id='{actor_id}']")
        row.wait_for(timeout=UI_TIMEOUT_MS)
        # The row can first appear from a poll made while the actor was still being created.
        _eventually(lambda: "ALIVE" in row.locator("[data-juno=actor-state]").inner_text(), timeout=30,
                    message="the actor's row never showed it ALIVE")
        page.locator("[data-juno=throughput-chart]").first.wait_for(timeout=UI_TIMEOUT_MS)

        # Its log, from the actor's row: what it printed.
        row.locator("[data-juno=show-logs]").click()
        page.locator("[data-juno=log-view]", has_text="keeper says hello").wait_for(timeout=UI_TIMEOUT_MS)

        gate.write_text("go")
        assert juno.get(refs, timeout=60) == [1, 1]
        _eventually(lambda: _count(page, "FINISHED") >= finished_before + 2, timeout=30,
                           message="the panel never counted the finished tasks")
        _eventually(lambda: float(cpu.get_attribute("data-used")) == 0.0, timeout=30,
                           message="the CPU bar never went back to idle")
        screenshot(page, "sidebar-live.png")

        # Kill the actor from the panel: the first click asks, the second kills.
        kill = row.locator("[data-juno=kill-actor]")
        kill.click()
        kill.click()
        from juno.util.state import get_actor

        _eventually(lambda: get_actor(actor_id)["state"] == "DEAD", timeout=30,
                           message="the actor killed from the panel is not dead")
        _eventually(lambda: "DEAD" in row.locator("[data-juno=actor-state]").inner_text(), timeout=30,
                           message="the panel never showed the killed actor as DEAD")
        with pytest.raises(juno.exceptions.RayActorError):
            juno.get(keeper.ping.remote(), timeout=30)
        screenshot(page, "sidebar-actor-killed.png")
        assert page.page_errors == [], page.page_errors


def test_standalone_page_shows_the_same_cluster(tmp_path, shutdown_only):
    """The head's dashboard port serves the page to a browser outside Jupyter; the token
    in the first address logs the browser in."""
    import juno
    from juno.comm import auth
    from juno.cluster.local_cluster import normalize_address

    ctx = juno.init(num_cpus=1)
    assert ctx.dashboard_url, "juno.init() started no dashboard"
    base = f"http://{ctx.dashboard_url}"  # Ray's form: host:port
    _eventually(lambda: _status_of(f"{base}/api/summary") == 401, timeout=60,
                message="the dashboard juno.init() started in the background never answered")
    token, _ = auth.resolve_token(normalize_address(ctx.address))

    @juno.remote
    class Shown:
        def ok(self):
            return True

    actor = Shown.remote()
    assert juno.get(actor.ok.remote(), timeout=60)
    import juno.data as rd

    assert len(rd.range(100).map_batches(lambda b: b).take_all()) == 100  # a Data run for the Libraries section
    from juno.train.progress import TrainProgress

    train = TrainProgress("TorchTrainer(train_func)", "page-run", 1, display=False)  # and a Train run
    train.report(1, {"loss": 0.5, "epoch": 0})
    train.finish({"loss": 0.5, "epoch": 0})
    with browser() as page:
        page.goto(f"{base}/?token={token}", timeout=60_000)
        node_id = juno.get_runtime_context().get_node_id()
        page.locator(f"[data-juno=node-row][data-node-id='{node_id}']").wait_for(timeout=UI_TIMEOUT_MS)
        page.locator(f"[data-juno=actor-row][data-actor-id='{actor._actor_id.hex()}']").wait_for(
            timeout=UI_TIMEOUT_MS)
        run = page.locator("[data-juno=run-row][data-state=finished]", has_text="ReadRange")
        run.wait_for(timeout=UI_TIMEOUT_MS)
        run.locator("summary").click()  # opens the run: its table, one row per operator
        page.get_by_text("ReadRange->MapBatches(<lambda>)").first.wait_for(timeout=UI_TIMEOUT_MS)
        trained = page.locator("[data-juno=run-row][data-state=finished]", has_text="page-run")
        assert trained.locator("[data-juno=run-metrics]").inner_text(timeout=UI_TIMEOUT_MS) == "loss=0.5000"
        screenshot(page, "standalone-page.png")
        # Without the token a fresh browser gets no data.
        page.context.clear_cookies()
        response = page.goto(f"{base}/api/summary", timeout=30_000)
        assert response.status == 401
        assert page.page_errors == [], page.page_errors


def _write_notebook(path, *cells: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _run_cell(page, index: int, expect: str, timeout_ms: int = 120_000) -> str:
    """Runs the notebook's cell ``index`` as a user would (click it, Shift+Enter) and waits
    for ``expect`` in its output; returns that output's text."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    output = cell.locator(".jp-OutputArea-output", has_text=expect)
    try:
        output.first.wait_for(timeout=timeout_ms)
    except Exception:
        screenshot(page, f"notebook-cell-{index}-failed.png")
        raise AssertionError(f"cell {index} never printed {expect!r}; the prompt says "
                             f"{cell.locator('.jp-InputPrompt').inner_text()!r}, the output "
                             f"{cell.locator('.jp-OutputArea').inner_text()!r}") from None
    return output.first.inner_text()


def test_sidebar_finds_the_cluster_the_notebook_kernel_started(tmp_path, _juno_leak_guard):
    """No JUNO_ADDRESS, nothing recorded: `juno.init()` in the notebook starts a cluster and
    the panel, following the active notebook's kernel, shows that cluster."""
    lab = LabServer(tmp_path)
    _write_notebook(
        lab.root / "work.ipynb",
        "import juno\n"
        "ctx = juno.init(num_cpus=1)\n"
        "@juno.remote\n"
        "class NotebookActor:\n"
        "    def ping(self):\n"
        "        return 'pong'\n"
        "a = NotebookActor.options(name='from-notebook').remote()\n"
        "assert juno.get(a.ping.remote(), timeout=60) == 'pong'\n"
        "print('READY', ctx.address, a._actor_id.hex())",
        "juno.shutdown()\nprint('STOPPED')")
    try:
        with browser() as page:
            page.goto(lab.url("lab/tree/work.ipynb"), timeout=60_000)
            page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
            # Cells run before the kernel is up are dropped: wait, as a user would, for "Idle".
            page.locator("#jp-main-statusbar", has_text="Idle").wait_for(timeout=60_000)
            ready = _run_cell(page, 0, "READY")
            _, address, actor_id = ready.split()[-3:]
            tab = page.locator(".jp-SideBar.jp-mod-left [data-id=juno-sidebar]")
            if not page.locator("#juno-sidebar").is_visible():
                tab.click()
            page.locator("#juno-sidebar").wait_for(state="visible", timeout=UI_TIMEOUT_MS)
            _eventually(lambda: address in page.locator("[data-juno=address]").first.inner_text()
                        and "Connected" in page.locator("[data-juno=connection-status]").first.inner_text(),
                        timeout=30, message=f"the panel never connected to the kernel's cluster at {address}")
            page.locator(f"[data-juno=actor-row][data-actor-id='{actor_id}']").wait_for(timeout=UI_TIMEOUT_MS)
            screenshot(page, "sidebar-kernel-cluster.png")
            _run_cell(page, 1, "STOPPED")
            assert page.page_errors == [], page.page_errors
    finally:
        lab.stop()
