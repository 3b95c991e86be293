"""A worker's warm-up (storefront/warm.py, run by gunicorn.conf.py): every template compiled and the lazily imported
modules loaded before the first request, with no database or network touched."""

import sys

from sqlalchemy import event

from storefront.extensions import db
from storefront.warm import warm_up


def test_warm_up_compiles_every_template_and_loads_what_imports_lazily(app):
    app.jinja_env.cache.clear()
    sent: list[str] = []
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    warm_up(app)

    names = app.jinja_env.list_templates(filter_func=lambda name: name.endswith((".html", ".txt", ".xml")))
    cached = {key[1] for key in app.jinja_env.cache}
    assert len(names) > 50
    assert set(names) <= cached
    assert "email_validator" in sys.modules
    assert "stripe.checkout._session" in sys.modules
    assert "payments_gateway" in app.extensions
    assert sent == []


def test_gunicorn_warms_each_worker_before_its_first_request(app):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gunicorn_conf", Path(__file__).parent.parent / "gunicorn.conf.py")
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    app.jinja_env.cache.clear()
    logged: list[str] = []

    class Worker:
        wsgi = app
        pid = 4242

        class log:
            @staticmethod
            def info(message, *args):
                logged.append(message % args)

    settings.post_worker_init(Worker())

    assert "shop/show_release.html" in {key[1] for key in app.jinja_env.cache}
    assert logged and logged[0].startswith("Small Batch: worker 4242 warmed up in")
