"""`billing price quote` (design.md §2), run as the user runs it, in a fresh process."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PER_EXECUTION = {
    "currency": "usd",
    "billing_scheme": "per_unit",
    "unit_amount_decimal": "0.1",
}
GRADUATED = {
    "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
    "tiers": [{"up_to": 1000, "unit_amount_decimal": "5", "flat_amount_decimal": "0"},
              {"up_to": "inf", "unit_amount_decimal": "4"}],
}  # fmt: skip


def quote(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "price", "quote", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip


def test_one_item_from_stdin() -> None:
    result = quote(stdin=json.dumps({"price": PER_EXECUTION, "quantity": "12345"}))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == '{"currency": "usd", "amount_decimal": "1234.5", "amount": 1235, "total": "12.35"}\n'
    )


def test_a_list_from_a_file_prints_one_line_per_item_in_order(tmp_path: Path) -> None:
    items = [
        {"price": GRADUATED, "quantity": "1500.5"},
        {"price": {"currency": "jpy", "unit_amount": 3}, "quantity": 2.5},
        {"price": {"currency": "kwd", "unit_amount_decimal": "0.5"}, "quantity": "3"},
    ]
    path = tmp_path / "items.json"
    path.write_text(json.dumps(items))
    result = quote(str(path))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"currency": "usd", "amount_decimal": "7002", "amount": 7002, "total": "70.02"},
        {"currency": "jpy", "amount_decimal": "7.5", "amount": 8, "total": "8"},
        {"currency": "kwd", "amount_decimal": "1.5", "amount": 2, "total": "0.002"},
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"price": GRADUATED | {"tiers_mode": "steps"}, "quantity": "1"}, "price.tiers_mode:"),
        ([{"price": PER_EXECUTION, "quantity": "1"}, {"price": PER_EXECUTION, "quantity": "-1"}], "[1].quantity:"),
        ([{"price": PER_EXECUTION | {"currency": "usdx"}, "quantity": "1"}], "[0].price.currency:"),
        ({"price": PER_EXECUTION}, "quantity:"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_prints_nothing(document: object, message: str) -> None:
    result = quote(stdin=json.dumps(document))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"billing price quote: {message}")


def test_malformed_json_is_an_error() -> None:
    result = quote(stdin='{"price": ')
    assert (result.returncode, result.stdout) == (1, "")
    assert "cannot read JSON" in result.stderr


def test_a_thousand_items_quote_well_under_a_second() -> None:
    items = json.dumps([{"price": GRADUATED, "quantity": str(i * 7 + 0.5)} for i in range(1000)])
    started = time.perf_counter()
    result = quote(stdin=items)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1000
    assert elapsed < 1.0  # the whole process, interpreter start-up included


def test_the_command_imports_no_ray_database_or_web_stack() -> None:
    script = (
        "import sys, cli.main; sys.argv = ['billing', 'price', 'quote']; "
        "import cli.price; heavy = {'ray', 'sqlalchemy', 'fastapi', 'asyncpg', 'redis'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert result.stdout.strip() == "[]"
