"""Serve in a real kernel: serve.run returns at once with the live view under its cell, and the
replicas' prints land under the cell that deployed the application, even when a later cell (or any
HTTP client) sends the requests that make them print."""
from __future__ import annotations

DEPLOY = '''
import json, urllib.request
import juno
from juno import serve
juno.init(num_cpus=2)
serve.start(http_options={"port": 0})

@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Loud:
    def __init__(self):
        print("replica up", flush=True)

    def __call__(self, request):
        print("replica answers", request.query_params["n"], flush=True)
        return "ok"

serve.run(Loud.bind(), name="loud", route_prefix="/loud")
print("deployed")
'''


def test_replica_prints_land_under_the_deploying_cell(own_kernel):
    deploy = own_kernel.run_ok(DEPLOY)
    assert "replica up" in deploy.stdout and "deployed" in deploy.stdout
    assert any(m["header"]["msg_type"] == "display_data" for m in deploy.messages)  # the live view
    later = own_kernel.run_ok(
        "for n in range(3):\n"
        "    urllib.request.urlopen(serve.get_http_address() + f'/loud?n={n}', timeout=30).read()\n"
        "print('sent')")
    own_kernel.wait_for(lambda: deploy.stdout.count("replica answers") == 3, timeout=30,
                        what="the replica's three prints under the deploying cell")
    assert "replica answers" not in later.stdout and later.stdout == "sent\n"
    own_kernel.run_ok("serve.shutdown(); juno.shutdown()")
