"""The rules of the shop. No Flask, no Stripe: plain values, a session and an explicit `now`."""
