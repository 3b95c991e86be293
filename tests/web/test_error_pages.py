"""Error pages speak in the shop's words and always offer a way on."""


def test_a_missing_page_says_so_in_the_shops_voice_with_a_way_home(app, client):
    response = client.get("/no-such-shelf")
    page = response.get_data(as_text=True)

    assert response.status_code == 404
    assert "Page not found" in page and "Nothing on this shelf" in page
    assert "The requested URL was not found on the server" not in page  # Werkzeug's words, written for developers
    assert 'href="/">See what is on sale now</a>' in page


def test_other_errors_get_a_plain_heading_not_the_http_name(app, client):
    response = client.get("/stripe/webhook")  # POST only
    page = response.get_data(as_text=True)

    assert response.status_code == 405
    assert "That is not something this page does" in page and "Method Not Allowed" not in page
    assert 'href="/">Back to the shop</a>' in page
