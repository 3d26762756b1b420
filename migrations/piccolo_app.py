"""Piccolo app config: tells Piccolo's runner where the hub's migrations are."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="hub",
    migrations_folder_path=str(Path(__file__).parent / "versions"),
    table_classes=[],
    migration_dependencies=[],
    commands=[],
)
