"""The bench's yardstick: a hello-world Flask view, served by gunicorn with the shop's settings (bench/drop.py).

The release page's requests per second divided by this one's (`page_ratio`) says how much of the web tier's
capacity the page itself costs. Not part of the shop: only bench/drop.py serves it, in a gunicorn of its own.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def say_hello():
    """Answer as little as a Flask view can."""
    return "Hello"
