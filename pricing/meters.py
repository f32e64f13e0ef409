"""The five usage meters the platform kernel reports, in the order every table uses."""

from enum import StrEnum


class Meter(StrEnum):
    CPU_SECONDS = "cpu_seconds"
    MEMORY_GB_HOURS = "memory_gb_hours"
    STORAGE_GB_HOURS = "storage_gb_hours"
    NETWORK_GB = "network_gb"
    EXECUTIONS = "executions"


# A fixed order lets hot paths carry usage as a plain tuple instead of a dict.
METERS: tuple[Meter, ...] = tuple(Meter)
