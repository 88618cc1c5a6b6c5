"""Pure planners: observed objects in, desired objects, status and decisions out. No I/O here, so
every rule is unit-tested without a cluster (tests/unit/test_planning_*.py)."""
