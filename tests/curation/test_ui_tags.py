from lookfirst.pools.templatetags.lookfirst_ui import stacked_bar


def test_stacked_bar_keeps_bucket_order_whatever_order_the_summary_comes_in():
    # A run summary read back from jsonb has its keys re-sorted: easy, hard, medium.
    html = stacked_bar({"easy": 59, "hard": 105, "medium": 128, "other": 0}, 160)
    titles = [part.split('"')[0] for part in html.split('title="')[1:]]
    assert titles == ["easy: 59", "medium: 128", "hard: 105"]
    assert 'style="max-width:160px"' in html and "width:43.84%;background:#d97706" in html
