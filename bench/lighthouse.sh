#!/usr/bin/env bash
# Lighthouse 12.2.3 (mobile preset, the default form factor) over the demo shop: home, a release on sale, a
# batch story and a hold page. Prints performance, accessibility, best practices, SEO and the bytes each page
# loads. A measurement, not a test: it exits non-zero only when Lighthouse itself (or the shop) fails.
#
#   bench/lighthouse.sh                 # or: make lighthouse
#   KEEP=1 bench/lighthouse.sh          # keep the temporary folder with the JSON reports
#
# It needs Node with npm (Lighthouse is installed once into LIGHTHOUSE_CACHE) and Chromium (CHROME_PATH).
# The shop runs as it would be served: gunicorn, not Flask's debug server, on a fresh demo database in a
# temporary folder, paying through the shop's own Stripe simulator; nothing in instance/ is touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${VENV_BIN:-$ROOT/.venv/bin}
LIGHTHOUSE_VERSION=12.2.3
LIGHTHOUSE_CACHE=${LIGHTHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/small-batch/lighthouse-$LIGHTHOUSE_VERSION}
export CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium}
CHROME_FLAGS="--headless=new --no-sandbox --disable-gpu"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smallbatch-lighthouse-XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "${KEEP:-}" ]]; then echo "Reports and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }

free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- Lighthouse, once -------------------------------------------------------------------------------------------
LIGHTHOUSE=$LIGHTHOUSE_CACHE/node_modules/.bin/lighthouse
if [[ ! -x $LIGHTHOUSE ]]; then
  say "Installing Lighthouse $LIGHTHOUSE_VERSION into $LIGHTHOUSE_CACHE"
  mkdir -p "$LIGHTHOUSE_CACHE"
  npm install --prefix "$LIGHTHOUSE_CACHE" --no-audit --no-fund --loglevel=error "lighthouse@$LIGHTHOUSE_VERSION" >&2
fi
[[ -x $CHROME_PATH ]] || { say "Chromium not found at $CHROME_PATH (set CHROME_PATH)"; exit 1; }

# --- The demo shop ----------------------------------------------------------------------------------------------
PORT=$(free_port)
SIM_PORT=$(free_port)
export FLASK_APP=wsgi
export STOREFRONT_ENV=development          # test payments through the simulator; gunicorn never runs debug mode
export INSTANCE_PATH=$WORK/instance
export DATABASE_URL=sqlite:///$WORK/shop.db
export UPLOAD_FOLDER=$WORK/uploads
export MAIL_DIR=$WORK/mail
export HUEY_SQLITE_PATH=$WORK/huey.db
export SECRET_KEY=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(32))')
export SHOP_URL=http://127.0.0.1:$PORT
export STRIPE_SECRET_KEY=sk_test_lighthouse
export STRIPE_WEBHOOK_SECRET=whsec_$("$BIN/python" -c 'import secrets; print(secrets.token_hex(24))')
export STRIPE_API_BASE=http://127.0.0.1:$SIM_PORT
mkdir -p "$INSTANCE_PATH"
cd "$ROOT"

say "Seeding a demo shop in $WORK"
"$BIN/flask" db upgrade >"$WORK/setup.log" 2>&1
"$BIN/flask" storefront seed-demo >>"$WORK/setup.log" 2>&1

"$BIN/flask" storefront stripe-sim --port "$SIM_PORT" --webhook-url "$SHOP_URL/stripe/webhook" >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
"$BIN/gunicorn" --bind "127.0.0.1:$PORT" --workers 2 --threads 4 --access-logfile "$WORK/access.log" \
  --error-logfile "$WORK/gunicorn.log" wsgi:app &
PIDS+=($!)

for _ in $(seq 100); do
  curl -fsS -o /dev/null "$SHOP_URL/" 2>/dev/null && curl -fsS -o /dev/null "$STRIPE_API_BASE/_sim" 2>/dev/null && break
  sleep 0.2
done
curl -fsS -o /dev/null "$SHOP_URL/" || { say "The shop did not start:"; cat "$WORK/gunicorn.log" >&2; exit 1; }

# The pages: a release on sale (the demo's rye, or whichever is on sale), its batch's story, and a hold made the
# way a buyer makes one: the reserve form posted with its CSRF token and session cookie.
read -r RELEASE_SLUG BATCH_SLUG < <("$BIN/python" - <<'PY'
from sqlalchemy import select

from storefront import clock, create_app
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Release, ReleaseStatus

with create_app().app_context():
    releases = db.session.scalars(select(Release).order_by(Release.on_sale_at.desc())).all()
    on_sale = [v.release for v in describe_releases(db.session, releases, clock.now()) if v.status is ReleaseStatus.ON_SALE]
    chosen = next((r for r in on_sale if r.slug == "rye-batch-7"), on_sale[0])
    print(chosen.slug, chosen.batch.slug)
PY
)
JAR=$WORK/cookies.txt
TOKEN=$(curl -fsS -c "$JAR" "$SHOP_URL/releases/$RELEASE_SLUG" | sed -n 's/.*name="csrf_token"[^>]*value="\([^"]*\)".*/\1/p' | head -n 1)
curl -fsS -o /dev/null -b "$JAR" -c "$JAR" -w '%{http_code}' \
  --data-urlencode "csrf_token=$TOKEN" --data-urlencode "quantity=1" --data-urlencode "email=lighthouse@example.com" \
  "$SHOP_URL/releases/$RELEASE_SLUG/reserve" >"$WORK/reserve.status"
[[ $(cat "$WORK/reserve.status") == 303 ]] || { say "Reserving answered $(cat "$WORK/reserve.status"), not 303"; exit 1; }
HOLD_TOKEN=$("$BIN/python" - <<'PY'
from sqlalchemy import select

from storefront import create_app
from storefront.extensions import db
from storefront.models import Hold

with create_app().app_context():
    print(db.session.scalar(select(Hold.token).where(Hold.buyer_email == "lighthouse@example.com")))
PY
)

PAGES=(
  "home|/"
  "release|/releases/$RELEASE_SLUG"
  "story|/batches/$BATCH_SLUG"
  "hold|/holds/$HOLD_TOKEN"
)

# --- Lighthouse over each page ------------------------------------------------------------------------------------
failed=0
for entry in "${PAGES[@]}"; do
  name=${entry%%|*}
  path=${entry#*|}
  say "Lighthouse: $name ($path)"
  if ! "$LIGHTHOUSE" "$SHOP_URL$path" --quiet --output=json --output-path="$WORK/$name.json" \
      --only-categories=performance,accessibility,best-practices,seo \
      --chrome-flags="$CHROME_FLAGS" >"$WORK/$name.log" 2>&1; then
    say "Lighthouse failed on $name:"
    tail -n 20 "$WORK/$name.log" >&2
    failed=1
  fi
done

"$BIN/python" - "$WORK" "${PAGES[@]}" <<'PY'
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])
rows, notes = [], []
for entry in sys.argv[2:]:
    name, path = entry.split("|", 1)
    shown = "/holds/…" if name == "hold" else path  # a hold's token is one buyer's
    report_path = work / f"{name}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"runtimeError": {"code": "no report"}}
    if report.get("runtimeError"):
        rows.append(f"| {name} `{shown}` | failed: {report['runtimeError'].get('code', '')} | | | | |")
        continue
    scores = [report["categories"][key]["score"] for key in ("performance", "accessibility", "best-practices", "seo")]
    cells = ["n/a" if score is None else str(round(score * 100)) for score in scores]
    weight = report["audits"]["total-byte-weight"]["numericValue"] / 1024
    rows.append(f"| {name} `{shown}` | " + " | ".join(cells) + f" | {weight:.0f} KiB |")
    # What cost points: where to look next.
    for key in ("performance", "accessibility", "best-practices", "seo"):
        for ref in report["categories"][key]["auditRefs"]:
            audit = report["audits"][ref["id"]]
            if ref["weight"] and audit["score"] is not None and audit["score"] < 0.9:
                notes.append(f"  {name}: {key} lost points on {audit['id']} {audit.get('displayValue', '')}".rstrip())

print(f"\nLighthouse {report.get('lighthouseVersion', '')}, mobile preset (simulated slow 4G, mid-range phone)\n")
print("| page | performance | accessibility | best practices | SEO | total weight |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
print("\n".join(rows))
if notes:
    print("\nBelow 0.9:\n" + "\n".join(notes))
PY

exit "$failed"
