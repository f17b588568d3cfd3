"""Generic stage drivers: each reads a task's params section and runs that task's stage function."""
