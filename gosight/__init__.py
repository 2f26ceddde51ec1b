"""GoSight: a self-hosted observability appliance in one executable."""

__version__ = "0.1.0"
