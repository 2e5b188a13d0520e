"""Optional integrations with other frameworks (each behind its own extra; import the submodule to use it)."""
