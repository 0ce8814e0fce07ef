"""What each route costs: the route bench, the service under load, and the
Python (FastAPI) baseline server."""
