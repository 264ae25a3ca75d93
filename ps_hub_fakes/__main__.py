"""Serve the fake HubSpot, Salesforce and BambooHR until SIGINT/SIGTERM.

    python3 -m ps_hub_fakes --hubspot-port 8071 --salesforce-port 8072 --bamboohr-port 8073
"""

from __future__ import annotations

import argparse
import signal
import threading

from .bamboohr import FakeBambooHR
from .base import FakeVendor
from .hubspot import FakeHubSpot
from .salesforce import FakeSalesforce

# --------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> None:
    """Serve the three fakes until SIGINT/SIGTERM, printing their URLs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubspot-port", type=int, default=8071)
    parser.add_argument("--salesforce-port", type=int, default=8072)
    parser.add_argument("--bamboohr-port", type=int, default=8073)
    parser.add_argument("--hubspot-token", help="bearer token to require (default: any)")
    parser.add_argument("--salesforce-client-id", help="client id to require (default: any)")
    parser.add_argument("--salesforce-client-secret", help="secret to require (default: any)")
    parser.add_argument("--bamboohr-api-key", help="API key to require (default: any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)

    fakes: dict[str, FakeVendor] = {
        "hubspot": FakeHubSpot(args.hubspot_token, port=args.hubspot_port, latency=args.latency),
        "salesforce": FakeSalesforce(
            args.salesforce_client_id,
            args.salesforce_client_secret,
            port=args.salesforce_port,
            latency=args.latency,
        ),
        "bamboohr": FakeBambooHR(
            args.bamboohr_api_key, port=args.bamboohr_port, latency=args.latency
        ),
    }
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for name, fake in fakes.items():
            fake.start()
            print(f"{name}: {fake.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for fake in fakes.values():
            fake.stop()


if __name__ == "__main__":
    main()
