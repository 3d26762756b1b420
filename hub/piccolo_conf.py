"""Piccolo's configuration module, used only by the migration runner (`hub migrate`).

Piccolo finds its engine through this module (PICCOLO_CONF=hub.piccolo_conf); the running
services build their own `Database` from settings instead of importing this.
"""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from hub.settings import load_settings

# No statement cache: each migration runs once, and behind PgBouncer in transaction mode a
# named statement could collide with another client's on a shared server connection.
DB = PostgresEngine(config={"dsn": load_settings().database_url, "statement_cache_size": 0})

APP_REGISTRY = AppRegistry(apps=["migrations.piccolo_app"])
