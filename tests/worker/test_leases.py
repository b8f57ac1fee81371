"""The worker's lease book: lease state arriving out of order never revokes a lease it should
not, never keeps one it should not, and never takes up again a lease the worker gave up."""

from __future__ import annotations

from facefleet.worker.leases import LeaseBook


def test_a_list_older_than_the_newest_applied_is_ignored() -> None:
    book = LeaseBook()
    assert book.apply_list(10, [(1, 1), (2, 1)])
    assert not book.apply_list(9, [])  # answered before the one already applied
    assert book.desired() == {1: 1, 2: 1}
    assert book.apply_list(11, [(1, 1)])
    assert book.desired() == {1: 1}


def test_a_list_no_newer_than_a_grant_does_not_revoke_it() -> None:
    book = LeaseBook()
    book.apply_list(10, [])
    book.grant(10, 5, 3)  # a camera request answered at generation 10
    # A heartbeat answered at the same generation, before the grant reached the hot store.
    book.apply_list(10, [])
    assert book.desired() == {5: 3}
    book.apply_list(12, [])  # newer than the grant: the truth
    assert book.desired() == {}


def test_a_grant_answered_before_an_applied_list_is_known_as_of_that_list() -> None:
    book = LeaseBook()
    book.apply_list(20, [])
    book.grant(15, 5, 3)  # served earlier, arrived later
    book.apply_list(20, [])
    assert book.desired() == {5: 3}


def test_a_newer_epoch_replaces_an_older_one() -> None:
    book = LeaseBook()
    book.grant(1, 5, 3)
    book.grant(1, 5, 2)  # a stale answer about an older epoch
    assert book.desired() == {5: 3}
    book.apply_list(2, [(5, 4)])
    assert book.desired() == {5: 4}


def test_a_lease_given_up_is_never_taken_up_again_at_that_epoch() -> None:
    book = LeaseBook()
    book.apply_list(10, [(1, 1)])
    book.give_up(1, 1)  # its stream ended; the release is on its way
    # A heartbeat answered before the release committed still lists it.
    book.apply_list(10, [(1, 1)])
    book.apply_list(11, [(1, 1)])
    book.grant(11, 1, 1)
    assert book.desired() == {}
    # Once the control plane no longer lists it, the matter is settled...
    book.apply_list(12, [])
    assert book.given_up == set()
    # ... and the camera may come back to this worker at a new epoch.
    book.apply_list(13, [(1, 2)])
    assert book.desired() == {1: 2}


def test_a_refused_epoch_is_revoked_at_once() -> None:
    book = LeaseBook()
    book.apply_list(10, [(1, 4), (2, 1)])
    book.give_up(1, 3)  # an older epoch refused: the newer lease stays
    assert book.desired() == {1: 4, 2: 1}
    book.give_up(1, 4)
    assert book.desired() == {2: 1}


def test_a_registration_starts_over_with_exactly_its_leases() -> None:
    book = LeaseBook()
    book.apply_list(10, [(1, 1), (2, 1)])
    book.give_up(2, 1)
    book.reset(30, [(3, 7)])
    assert book.desired() == {3: 7} and book.given_up == set()
    assert not book.apply_list(10, [(1, 1)])  # the old session's answers change nothing


def test_servers_without_generations_send_whole_lists() -> None:
    book = LeaseBook()
    book.apply_list(None, [(1, 1)])
    book.apply_list(None, [])
    assert book.desired() == {}
