"""The one table writer the evaluation report, the suite report and the scaling study share."""

from sim.report.tables import html_table, md_table


def test_markdown_escapes_pipes_and_html_escapes_markup():
    header, cells = ["agent", "note"], [["e2e", "a|b"], ["`highway:dense`", "<b>"]]
    assert md_table(header, cells).splitlines() == [
        "| agent | note |",
        "|---|---|",
        "| e2e | a\\|b |",
        "| `highway:dense` | <b> |",
    ]
    page = html_table(header, cells)
    assert "<td>highway:dense</td>" in page and "<td>&lt;b&gt;</td>" in page
    assert page.startswith("<table><thead><tr><th>agent</th>")


def test_every_report_writes_its_tables_with_it():
    """No second copy of the table writer: the modules that write reports import it."""
    import inspect

    from sim.pipelines import study
    from sim.report import report, suite

    for module in (report, suite, study):
        source = inspect.getsource(module)
        assert "<table><thead>" not in source, module.__name__
        assert "md_table" in source and "html_table" in source, module.__name__
