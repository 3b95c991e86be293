"""Flask extensions: created here without an app, initialised in `create_app()`."""

from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from storefront.models.base import Base, UTCDateTime


def render_migration_type(type_: str, obj: object, autogen_context) -> str | bool:
    """Write UTCDateTime into revisions as a plain `sa.DateTime(timezone=True)`.

    Revisions must not import application code: they outlive it.
    """
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True, render_item=render_migration_type)
login_manager = LoginManager()
# Storage comes from RATELIMIT_STORAGE_URI (config.py: memory:// by default, Redis when REDIS_URL is set). No default
# limits: each limited view says what it limits. get_remote_address sees the client's address once PROXY_FIX is set.
limiter = Limiter(key_func=get_remote_address, default_limits=[])

csrf = CSRFProtect()
# Settings in storefront/compression.py: text responses only, never a streamed CSV export.
compress = Compress()
