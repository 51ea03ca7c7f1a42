"""How silver takes new rows (the contract's write mode) and how deltalake reaches the S3 layers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse_common.contracts import parse_contract
from lakehouse_common.exceptions import ContractError
from lakehouse_common.settings import get_settings
from lakehouse_common.storage import delta_storage_options

BASE = """
name: things
format: {type: csv}
columns:
  - {name: id, type: string}
  - {name: updated_at, type: timestamp}
  - {name: tags, type: "list<string>"}
"""


@pytest.mark.parametrize(
    ("extra", "mode"),
    [
        pytest.param("primary_key: [id]\n", "merge", id="a-key-merges-by-default"),
        pytest.param("", "append", id="no-key-appends-by-default"),
        pytest.param("primary_key: [id]\nmode: append\n", "append", id="a-key-may-still-append"),
        pytest.param("primary_key: [id]\norder_by: [updated_at]\n", "merge", id="order-by-with-a-key"),
    ],
)
def test_the_write_mode_follows_the_primary_key_unless_declared(extra: str, mode: str) -> None:
    assert parse_contract(BASE + extra, "t").write_mode == mode


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param("mode: merge\n", "mode merge needs a primary_key", id="merge-without-key"),
        pytest.param("order_by: [updated_at]\n", "order_by says which row of a key", id="order-without-merge"),
        pytest.param("primary_key: [id]\norder_by: [nope]\n", "order_by column 'nope' is not a column", id="unknown"),
        pytest.param("primary_key: [id]\norder_by: [tags]\n", "order_by column 'tags' is a list", id="list-column"),
        pytest.param(
            "primary_key: [id]\nchildren:\n  - {name: thing_tags, explode: tags, column: {name: tag}, "
            "parent_columns: [updated_at]}\n",
            "parent_columns must include the primary key",
            id="child-without-parent-key",
        ),
    ],
)
def test_inconsistent_write_modes_are_refused_with_what_is_valid(extra: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_contract(BASE + extra, "t")


@pytest.fixture(autouse=True)
def _no_shell_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(name)


def test_delta_options_reach_minio_over_http_with_conditional_puts(tmp_path: Path) -> None:
    settings = get_settings(
        backend="s3",
        s3_endpoint_url="http://minio:9000/",
        s3_access_key_id="key-id",
        s3_secret_access_key="not-a-secret",  # pragma: allowlist secret
        s3_path_style=True,
        scratch_dir=tmp_path,
    )
    options = delta_storage_options(settings)
    assert options["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert options["conditional_put"] == "etag"
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false"
    assert options["AWS_ACCESS_KEY_ID"] == "key-id"
    assert options["max_retries"] == str(settings.s3_max_attempts - 1)


def test_delta_options_on_aws_leave_credentials_to_the_default_chain(tmp_path: Path) -> None:
    settings = get_settings(backend="s3", s3_path_style=False, s3_region="eu-central-1", scratch_dir=tmp_path)
    options = delta_storage_options(settings)
    assert options["AWS_REGION"] == "eu-central-1"
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "true"
    assert not {"AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_ACCESS_KEY_ID"} & options.keys()


@pytest.mark.parametrize(
    ("read_s", "connect_s", "timeout", "connect_timeout"),
    [
        pytest.param(60.0, 5.0, "60000ms", "5000ms", id="defaults"),
        pytest.param(0.5, 0.25, "500ms", "250ms", id="under-a-second-not-rounded-to-zero"),
    ],
)
def test_delta_options_carry_the_s3_timeouts_in_milliseconds(
    tmp_path: Path, read_s: float, connect_s: float, timeout: str, connect_timeout: str
) -> None:
    settings = get_settings(
        backend="s3", s3_read_timeout_s=read_s, s3_connect_timeout_s=connect_s, scratch_dir=tmp_path
    )
    options = delta_storage_options(settings)
    assert (options["timeout"], options["connect_timeout"]) == (timeout, connect_timeout)
