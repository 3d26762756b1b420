"""The `hub` command (entry point `hub.cli.main:main`): services, migrations, registry, audit."""
