# The one source of truth for the lockstep version of all five distributions.
# scripts/set_version.py rewrites the pyprojects from it; tests/test_packaging_meta.py checks them.
__version__ = "1.1.0"
