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
    parser.add_argument("--hubspot-rate-limit", metavar="N/SECONDS",
                        help="HubSpot's rolling window, e.g. 100/10: the request beyond N in SECONDS gets a 429")
    parser.add_argument("--salesforce-api-limit", type=int, default=FakeSalesforce.API_LIMIT,
                        help="Salesforce calls allowed before REQUEST_LIMIT_EXCEEDED (default: %(default)s)")
    args = parser.parse_args(argv)
    rate_limit = None
    if args.hubspot_rate_limit:
        count, _slash, seconds = args.hubspot_rate_limit.partition("/")
        rate_limit = (int(count), float(seconds or 10))

    fakes: dict[str, FakeVendor] = {
        "hubspot": FakeHubSpot(args.hubspot_token, port=args.hubspot_port, latency=args.latency,
                               rate_limit=rate_limit),
        "salesforce": FakeSalesforce(
            args.salesforce_client_id,
            args.salesforce_client_secret,
            port=args.salesforce_port,
            latency=args.latency,
            api_limit=args.salesforce_api_limit,
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
