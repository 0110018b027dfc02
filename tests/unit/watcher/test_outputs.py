import logging

import pytest

from testsupport.servers import free_port
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.watcher import outputs
from tracker_flavor.watcher.publisher import RestPublisher

pytestmark = pytest.mark.unit

RESULT = outputs.Output("model", "/store/model", consumed=False, reports=(("/v/a.html", "html"),))
INTERMEDIATE = outputs.Output("frame", "/store/frame", consumed=True, reports=(("/v/x", "csv"),))


def paths(uploads):
    return [(u.setting, u.artifact_path, u.file_name) for u in uploads]


def test_defaults_store_only_the_reports():
    uploads = outputs.plan(MLflowPlusSettings(), "train", [RESULT, INTERMEDIATE])
    assert paths(uploads) == [
        ("track_reports", "zenml/train/model", "a.html"),
        ("track_reports", "zenml/train/frame", "report_0.csv"),  # named after its type
    ]


def test_results_and_intermediates_are_selected_apart_and_by_name():
    settings = MLflowPlusSettings(track_output=True, track_reports=False)
    assert paths(outputs.plan(settings, "s", [RESULT, INTERMEDIATE])) == [
        ("track_output", "zenml/s/model/data", None)
    ]
    settings = MLflowPlusSettings(track_intermediates=["frame"], track_reports=["model"])
    assert paths(outputs.plan(settings, "s", [RESULT, INTERMEDIATE])) == [
        ("track_reports", "zenml/s/model", "a.html"),
        ("track_intermediates", "zenml/s/frame/data", None),
    ]
    assert outputs.plan(MLflowPlusSettings(track_intermediates=["other"]), "s", [INTERMEDIATE])


def test_a_folder_without_files_or_too_large_is_skipped_naming_output_and_setting(tmp_path):
    item = outputs.Upload("frame", "track_intermediates", str(tmp_path), "zenml/s/frame/data")
    assert outputs.files_of(str(tmp_path)) == []
    reason = outputs.problem(item, [], 100)
    assert "output 'frame'" in reason and "(track_intermediates)" in reason
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "x.parquet").write_bytes(b"0" * 2048)
    files = outputs.files_of(str(tmp_path))
    assert [size for _, size in files] == [2048]
    assert outputs.problem(item, files, 1) is None
    too_large = outputs.problem(item, files, 0.001)
    assert "max_artifact_mb=0.001" in too_large and "output 'frame'" in too_large


def test_an_upload_that_does_not_arrive_is_counted_and_the_others_go_on(tmp_path, caplog):
    (tmp_path / "a.html").write_text("<p>report</p>")
    publisher = RestPublisher(  # a real refused connection, no retries
        f"http://127.0.0.1:{free_port()}",
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"},
    )
    uploads = [
        outputs.Upload("report", "track_reports", str(tmp_path / "a.html"), "zenml/s/r", "a.html"),
        outputs.Upload("frame", "track_intermediates", str(tmp_path / "none"), "zenml/s/f/data"),
    ]
    account = outputs.Account()
    with caplog.at_level(logging.WARNING):
        outputs.upload(publisher, "0" * 32, uploads, 100, account)
    assert account.not_delivered == ["zenml/s/r/a.html"]
    assert account.skipped == 1 and account.delivered == 0
    assert "Could not store the report of output 'report'" in caplog.text


def test_registered_model_name_needs_log_model():
    with pytest.raises(ValueError, match="registered_model_name needs log_model"):
        MLflowPlusSettings(registered_model_name="churn")
    with pytest.raises(ValueError, match="max_artifact_mb"):
        MLflowPlusSettings(max_artifact_mb=0)
