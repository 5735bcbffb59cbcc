"""docker-runner: the only thing that touches the Docker daemon, behind a signed HTTP API."""

__version__ = "0.1.0"
