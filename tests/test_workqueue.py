"""The work queue library on a real SQLite file: order, targeting, leases, attempts,
finishing, import. Concurrency across processes is in test_workqueue_concurrency.py."""

from __future__ import annotations

import pytest

from torchsm import novas
from torchsm.errors import (ImportFailed, InvalidWorkItem, ItemNotFound, ItemNotOpen,
                            LeaseLost, NothingToClaim, NovaNotFound, UnknownTier)
from torchsm.tiers import Tier
from torchsm.work import work_queue
from torchsm.work.work_queue import ItemStatus

T0 = 1_800_000_000.0


@pytest.fixture
def queue(home, config):
    novas.add(home, config, "torch")
    novas.add(home, config, "echo")
    with work_queue.open_queue(home, config) as q:
        yield q


def claimed_texts(queue, nova="torch", now=T0 + 10):
    texts = []
    while (item := queue.try_claim(nova, now=now)) is not None:
        texts.append(item.text)
    return texts


def test_claim_order_is_tier_then_age(queue):
    queue.add("old low", priority="low", now=T0)
    queue.add("new critical", priority="critical", now=T0 + 3)
    queue.add("old medium", now=T0 + 1)
    queue.add("new medium", now=T0 + 2)
    queue.add("old critical", priority=Tier.CRITICAL, now=T0 + 2)
    queue.add("background", priority="background", now=T0 - 100)
    assert claimed_texts(queue) == ["old critical", "new critical", "old medium",
                                    "new medium", "old low", "background"]


def test_a_nova_claims_items_for_it_or_for_no_one(queue):
    queue.add("for echo", nova="echo", priority="critical", now=T0)
    queue.add("for anyone", now=T0)
    queue.add("for torch", nova="torch", now=T0 + 1)
    assert claimed_texts(queue, "torch") == ["for anyone", "for torch"]
    assert claimed_texts(queue, "echo") == ["for echo"]


def test_claim_sets_owner_attempt_and_lease(queue, config):
    queue.add("a", now=T0)
    item = queue.claim("torch", now=T0 + 5)
    assert item.status is ItemStatus.CLAIMED
    assert item.attempts == 1 and item.claimed_by == "torch" and item.owner
    assert item.lease_until == T0 + 5 + config.queue.lease_s


def test_claim_with_nothing_claimable_raises(queue):
    with pytest.raises(NothingToClaim, match="nothing to claim for torch"):
        queue.claim("torch", now=T0)


def test_claim_for_an_unknown_nova_is_refused(queue):
    with pytest.raises(NovaNotFound):
        queue.claim("ghost", now=T0)


def test_an_expired_lease_returns_the_item_to_pending(queue):
    queue.add("a", now=T0)
    first = queue.claim("torch", lease_s=60, now=T0)
    assert queue.try_claim("echo", now=T0 + 59) is None  # the lease still holds
    second = queue.claim("echo", lease_s=60, now=T0 + 60)
    assert second.id == first.id and second.attempts == 2
    assert second.owner != first.owner and second.claimed_by == "echo"


def test_listing_returns_expired_items_to_pending(queue):
    queue.add("a", now=T0)
    queue.claim("torch", lease_s=60, now=T0)
    [item] = queue.items(now=T0 + 61)
    assert item.status is ItemStatus.PENDING and item.owner is None


def test_after_max_attempts_the_item_is_dead(queue):
    queue.add("poison", max_attempts=2, now=T0)
    queue.claim("torch", lease_s=10, now=T0)
    queue.claim("torch", lease_s=10, now=T0 + 10)
    assert queue.try_claim("torch", now=T0 + 20) is None
    [item] = queue.items(now=T0 + 20)
    assert item.status is ItemStatus.DEAD and item.attempts == 2
    assert item.error == "lease expired on attempt 2 of 2"
    assert item.finished_at == T0 + 20


def test_requeue_expired_counts(queue):
    for text in "abc":
        queue.add(text, max_attempts=1, now=T0)
        queue.claim("torch", lease_s=10, now=T0)
    assert queue.requeue_expired(now=T0 + 5) == 0
    assert queue.requeue_expired(now=T0 + 10) == 3
    assert {i.status for i in queue.items(now=T0 + 10)} == {ItemStatus.DEAD}


def test_done_and_fail_are_final(queue):
    a = queue.add("a", now=T0)
    b = queue.add("b", now=T0)
    queue.claim("torch", now=T0)
    done = queue.done(a.id, result="shipped", now=T0 + 1)
    failed = queue.fail(b.id, error="cannot reproduce", now=T0 + 2)
    assert (done.status, done.result, done.finished_at) == (ItemStatus.DONE, "shipped", T0 + 1)
    assert (failed.status, failed.error) == (ItemStatus.FAILED, "cannot reproduce")
    with pytest.raises(ItemNotOpen, match="work item 1 is already done"):
        queue.done(a.id, now=T0 + 3)
    with pytest.raises(ItemNotOpen, match="work item 2 is already failed"):
        queue.done(b.id, now=T0 + 3)
    assert queue.try_claim("torch", now=T0 + 4) is None


def test_done_with_the_owner_token_needs_the_claim_to_hold(queue):
    queue.add("a", now=T0)
    stale = queue.claim("torch", lease_s=10, now=T0)
    fresh = queue.claim("echo", lease_s=10, now=T0 + 10)
    with pytest.raises(LeaseLost, match="echo holds it now"):
        queue.done(stale.id, owner=stale.owner, now=T0 + 11)
    assert queue.done(fresh.id, owner=fresh.owner, now=T0 + 11).status is ItemStatus.DONE


def test_done_with_an_owner_after_expiry_but_before_anyone_else_claims(queue):
    queue.add("a", now=T0)
    item = queue.claim("torch", lease_s=10, now=T0)
    # nobody requeued it yet: the late worker may still finish its own claim
    assert queue.done(item.id, owner=item.owner, now=T0 + 30).status is ItemStatus.DONE


def test_finishing_an_unknown_item(queue):
    with pytest.raises(ItemNotFound, match="no work item 42"):
        queue.fail(42, now=T0)


def test_add_validates(queue):
    with pytest.raises(UnknownTier):
        queue.add("a", priority="urgent")
    with pytest.raises(NovaNotFound):
        queue.add("a", nova="ghost")
    with pytest.raises(InvalidWorkItem):
        queue.add("   ")
    with pytest.raises(InvalidWorkItem):
        queue.add("a", max_attempts=0)
    assert queue.items() == []


def test_list_filters(queue):
    queue.add("for echo", nova="echo", now=T0)
    queue.add("anyone", now=T0 + 1)
    queue.claim("torch", now=T0 + 2)
    assert [i.text for i in queue.items(nova="echo", now=T0 + 3)] == ["for echo"]
    assert [i.text for i in queue.items(nova="torch", now=T0 + 3)] == ["anyone"]
    assert [i.text for i in queue.items(status="claimed", now=T0 + 3)] == ["anyone"]
    with pytest.raises(InvalidWorkItem, match="unknown status 'nah'"):
        queue.items(status="nah")


# --- import --------------------------------------------------------------------------

LEGACY = """\
Refactor the config loader
WORK_PROCESSED: Write the migration guide

Add retries to the mirror
"""

JSONL = """\
{"text": "Fix the flaky test", "nova": "echo", "priority": "high"}
{"text": "Tidy the changelog", "priority": "background"}
{"text": "no priority"}
{"text": "", "priority": "low"}
{"text": "x", "priority": "urgent"}
{"text": "x", "nova": "ghost"}
{not json
{"text": 5}
"""


def test_import_legacy_lines(queue, tmp_path):
    path = tmp_path / "queue.txt"
    path.write_text(LEGACY)
    report = queue.import_file(path, now=T0)
    assert (report.added, report.duplicates, report.blank, report.malformed) == (3, 0, 1, [])
    assert [i.text for i in queue.items(now=T0)] == [
        "Refactor the config loader", "Write the migration guide", "Add retries to the mirror"]
    assert {i.priority for i in queue.items(now=T0)} == {Tier.MEDIUM}


def test_import_jsonl_reports_malformed_lines_by_number(queue, tmp_path):
    path = tmp_path / "queue.jsonl"
    path.write_text(JSONL)
    report = queue.import_file(path, now=T0)
    assert report.added == 3
    assert [n for n, _ in report.malformed] == [4, 5, 6, 7, 8]
    assert report.malformed[1] == (5, "unknown priority 'urgent'")
    assert report.malformed[2] == (6, "no Nova named 'ghost'")
    items = {i.text: i for i in queue.items(now=T0)}
    assert items["Fix the flaky test"].nova == "echo"
    assert items["Fix the flaky test"].priority is Tier.HIGH
    assert items["Tidy the changelog"].priority is Tier.BACKGROUND
    assert items["no priority"].priority is Tier.MEDIUM


def test_import_twice_adds_nothing_the_second_time(queue, tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text(LEGACY + JSONL)
    first = queue.import_file(path, now=T0)
    second = queue.import_file(path, now=T0 + 1)
    assert first.added == 6 and second.added == 0 and second.duplicates == 6
    assert len(queue.items(now=T0 + 1)) == 6


def test_import_keeps_repeated_lines_and_adds_only_new_ones(queue, tmp_path):
    path = tmp_path / "queue.txt"
    path.write_text("same\nsame\n")
    assert queue.import_file(path, now=T0).added == 2
    path.write_text("new first\nsame\nsame\nsame\n")
    report = queue.import_file(path, now=T0)
    assert (report.added, report.duplicates) == (2, 2)


def test_import_a_finished_item_is_not_imported_again(queue, tmp_path):
    path = tmp_path / "queue.txt"
    path.write_text("only\n")
    queue.import_file(path, now=T0)
    item = queue.claim("torch", now=T0)
    queue.done(item.id, now=T0)
    assert queue.import_file(path, now=T0).added == 0


def test_import_invalid_utf8_line_is_malformed(queue, tmp_path):
    path = tmp_path / "queue.txt"
    path.write_bytes(b"fine\n\xff\xfe broken\nalso fine\n")
    report = queue.import_file(path, now=T0)
    assert report.added == 2 and report.malformed == [(2, "not valid UTF-8")]


def test_import_missing_or_binary_file_stores_nothing(queue, tmp_path):
    with pytest.raises(ImportFailed, match="No such file or directory"):
        queue.import_file(tmp_path / "nope.txt")
    binary = tmp_path / "binary.db"
    binary.write_bytes(b"first line\nSQLite format 3\x00\x00")
    with pytest.raises(ImportFailed, match=r"not a text file \(NUL byte on line 2\)"):
        queue.import_file(binary)
    with pytest.raises(ImportFailed, match="is a folder, not a file torchsm reads"):
        queue.import_file(tmp_path)
    assert queue.items() == []


def test_claim_can_mark_the_previous_claim_done_in_the_same_transaction(queue):
    queue.add("first", now=T0)
    queue.add("second", now=T0 + 1)
    first = queue.claim("torch", now=T0 + 2)
    second = queue.try_claim("torch", done_first=first, now=T0 + 3)
    assert second.text == "second"
    assert queue.get(first.id).status is ItemStatus.DONE
    assert queue.try_claim("torch", done_first=second, now=T0 + 4) is None
    assert queue.get(second.id).status is ItemStatus.DONE


def test_done_first_leaves_an_item_finished_or_taken_by_someone_else_alone(queue):
    queue.add("failed by the agent", now=T0)
    queue.add("expired", now=T0 + 1)
    failed = queue.claim("torch", now=T0 + 2)
    queue.fail(failed.id, error="no", now=T0 + 3)
    assert queue.try_claim("torch", done_first=failed, now=T0 + 4).text == "expired"
    assert queue.get(failed.id).status is ItemStatus.FAILED
    stale = queue.get(2)
    retaken = queue.claim("echo", now=T0 + 10_000)  # the lease of torch's claim expired
    assert queue.try_claim("torch", done_first=stale, now=T0 + 10_001) is None
    assert queue.get(retaken.id).status is ItemStatus.CLAIMED
