"""What each view shows, read back from its DOM (a Playwright frame) and compared with the tool's
structuredContent. Each check returns a line saying what it proved, or fails an assertion."""
import datetime
import re
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

FIELDS = ("commit", "best_case", "closed_won", "quota")


def shown_amount(text):
    """'$1,234,567.50' → Decimal('1234567.50')."""
    digits = re.sub(r"[^0-9.\-]", "", text)
    assert digits, f"no figure in {text!r}"
    return Decimal(digits)


def same_number(raw, want, what):
    assert raw is not None, f"{what}: no data-value, want {want}"
    assert float(raw) == float(want), f"{what}: data-value {raw}, want {want}"


def forecast(frame, sc):
    rows = frame.evaluate("""[...document.querySelectorAll('tr[data-user-id]')].map(tr => ({
        id: tr.dataset.userId, kind: tr.dataset.row,
        cells: Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map(td =>
            [td.dataset.field, {value: td.dataset.value ?? null, text: td.textContent}]))}))""")
    expected = [(r, "report") for r in sc["breakdown"]] + [(sc["total"], "total")]
    assert [(r["id"], r["kind"]) for r in rows] == [(r["user_id"], k) for r, k in expected], \
        f"table rows {[(r['id'], r['kind']) for r in rows]}"
    figures = 0
    for got, (want, _) in zip(rows, expected):
        for field in FIELDS:
            cell, what = got["cells"][field], f"{want['user_id']} {field}"
            if want.get(field) is None:
                assert cell["value"] is None and cell["text"] == "—", f"{what}: {cell}, want none"
                continue
            same_number(cell["value"], want[field], what)
            assert shown_amount(cell["text"]) == round(Decimal(str(want[field])), 2), f"{what}: shows {cell['text']}"
            if sc.get("currency", "USD") == "USD":
                assert cell["text"].startswith("$") or cell["text"].startswith("-$"), f"{what}: {cell['text']}"
            figures += 1
    charted = frame.evaluate("document.querySelectorAll('.bars svg').length")
    assert charted == len(sc["breakdown"]), f"{charted} chart rows for {len(sc['breakdown'])} reports"
    return (f"{len(sc['breakdown'])} direct reports and the total, {figures} figures: every "
            f"commit/best_case/closed_won/quota equals structuredContent; {charted} chart rows")


def local_day(at, zone):
    t = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return t.astimezone(zone).date().isoformat()


def pipeline(frame, sc):
    head = frame.evaluate("""(() => { const h = document.querySelector('[data-total][data-slipped]');
        return h && {total: h.dataset.total, slipped: h.dataset.slipped}; })()""")
    assert head, "no headline with data-total and data-slipped"
    assert int(head["total"]) == sc["total_changes"], f"headline total {head['total']}, want {sc['total_changes']}"
    assert int(head["slipped"]) == sc["slipped"], f"headline slipped {head['slipped']}, want {sc['slipped']}"
    rows = frame.evaluate("""[...document.querySelectorAll('tr[data-opportunity-id]')].map(tr =>
        [tr.dataset.opportunityId, tr.dataset.change, tr.dataset.at, tr.dataset.slipped === 'true'])""")
    changes = sc["changes"]
    newest_first = sorted(changes, key=lambda c: datetime.datetime.fromisoformat(c["at"].replace("Z", "+00:00")),
                          reverse=True)
    assert rows == [[c["opportunity_id"], c["change"], c["at"], bool(c["slipped"])] for c in newest_first], \
        "table rows are not the changes, newest first"
    zone = ZoneInfo((sc.get("window") or {}).get("time_zone") or "UTC")
    bars = frame.evaluate("""[...document.querySelectorAll('[data-day]')].map(g => [g.dataset.day,
        [...g.querySelectorAll('[data-kind]')].map(r => [r.dataset.kind, Number(r.dataset.count)])])""")
    got = Counter()
    for day, kinds in bars:
        for kind, n in kinds:
            got[(day, kind)] += n
    want = Counter((local_day(c["at"], zone), c["change"]) for c in changes)
    assert +got == want, f"chart {dict(+got)}, want {dict(want)}"
    days = [d for d, _ in bars]
    window = sc.get("window") or {}
    first, last = window.get("first_day") or window.get("since"), window.get("last_day") or window.get("until")
    if first and last and len(days) == len(set(days)):
        assert days[0] <= first and days[-1] >= last, f"chart days {days[0]}..{days[-1]}, window {first}..{last}"
    return (f"headline {sc['total_changes']} changes, {sc['slipped']} slips; {len(rows)} table rows newest "
            f"first; chart counts per day and kind equal the changes ({len(days)} bars, {zone.key})")


def risk(frame, sc):
    rows = frame.evaluate("""[...document.querySelectorAll('tr[data-opportunity-id]')].map(tr => {
        const s = tr.querySelector('[data-field=score]');
        return [tr.dataset.opportunityId, s ? (s.dataset.value ?? null) : 'missing cell']; })""")
    opps = sc["opportunities"]
    assert [r[0] for r in rows] == [o["opportunity_id"] for o in opps], "rows are not the opportunities in order"
    for (oid, value), o in zip(rows, opps):
        if o.get("score") is None:
            assert value is None, f"{oid}: score {value}, want none"
        else:
            same_number(value, o["score"], f"{oid} score")
    scores = [o["score"] for o in opps if o.get("score") is not None]
    assert scores == sorted(scores), "the answer is not riskiest first"
    missing = frame.evaluate("document.querySelectorAll('[data-not-found]').length")
    assert missing == len(sc.get("not_found") or []), f"{missing} not-found ids shown"
    return f"{len(rows)} opportunities riskiest first, every score equals structuredContent; {missing} ids not found"
