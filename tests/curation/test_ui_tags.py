from lookfirst.pools.templatetags.lookfirst_ui import stacked_bar


def test_stacked_bar_keeps_bucket_order_whatever_order_the_summary_comes_in():
    # A run summary read back from jsonb has its keys re-sorted: easy, hard, medium.
    html = stacked_bar({"easy": 59, "hard": 105, "medium": 128, "other": 0}, 160)
    titles = [part.split('"')[0] for part in html.split('title="')[1:]]
    assert titles == ["easy: 59", "medium: 128", "hard: 105"]
    assert 'style="max-width:160px"' in html and "width:43.84%;background:#d97706" in html


def test_line_chart_axis_starts_at_zero_for_small_positive_values_and_centres_a_constant():
    from lookfirst.pools.templatetags.lookfirst_ui import line_chart, value_range

    assert value_range(1e-05, 1.0) == (0.0, 1.0)
    assert value_range(0.6, 0.9) == (0.6, 0.9)
    assert value_range(-0.2, 0.4) == (-0.2, 0.4)
    assert value_range(0.5, 0.5) == (0.0, 1.0)
    assert value_range(-3.0, -3.0) == (-6.0, 0.0)
    html = line_chart({"reward/format": [(1, 1.0), (2, 1.0)], "kl": [(1, 1e-05), (2, 2e-05)]})
    labels = [part.split(">")[1].split("<")[0] for part in html.split('<text ')[1:]]
    assert labels == ["1", "0", "1", "2"]  # y max, y min, x min, x max


def test_ui_tag_doctests():
    import doctest

    from lookfirst.pools.templatetags import lookfirst_ui

    assert doctest.testmod(lookfirst_ui).attempted == 1 and doctest.testmod(lookfirst_ui).failed == 0
