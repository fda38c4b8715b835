"""The scenario's shared fixtures (defined with the checks in test_default.py), for every module."""

from test_default import chp_token, site_url  # noqa: F401 - fixtures used by the other modules
