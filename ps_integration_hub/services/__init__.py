"""Plain-Python services of the integration hub: no ORM, testable without a database."""
