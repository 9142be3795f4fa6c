"""Wrong arguments to a task, an actor constructor or an actor method raise TypeError at
``.remote()``, as a local call would; calls that fit run as before."""
from __future__ import annotations

import pytest

import juno

JUNO_SHARED_INIT = {"num_cpus": 2}


@juno.remote
def add(a, b=10, *, scale=1):
    return (a + b) * scale


@juno.remote
def collect(first, *rest, **named):
    return first, rest, named


@juno.remote
def countdown(n):
    yield from range(n, 0, -1)


@juno.remote(num_returns=2)
def pair(a, b):
    return a, b


@juno.remote
class Account:
    FEE = 2

    def __init__(self, owner, balance=0, *, currency="EUR"):
        self.owner, self.balance, self.currency = owner, balance, currency

    def deposit(self, amount, note=None):
        self.balance += amount
        return self.balance

    def history(self, *amounts):
        return sum(amounts)

    async def audit(self, level, *, verbose=False):
        return (level, verbose)

    def ticks(self, n):
        yield from range(n)

    @juno.method(num_returns=2)
    def split(self, amount):
        return amount // 2, amount - amount // 2

    @staticmethod
    def fee_for(amount):
        return amount * Account.FEE  # the actor class reaches class attributes

    @classmethod
    def fee(cls, times=1):
        return cls.FEE * times


def raises(call, message: str) -> None:
    with pytest.raises(TypeError) as info:
        call()
    assert str(info.value) == message


def test_task_calls_that_fit_run(cluster):
    assert juno.get(add.remote(1)) == 11
    assert juno.get(add.remote(1, 2, scale=3)) == 9
    assert juno.get(add.remote(b=1, a=2)) == 3
    assert juno.get(collect.remote(1, 2, 3, x=4)) == (1, (2, 3), {"x": 4})
    assert list(juno.get(list(countdown.remote(3)))) == [3, 2, 1]
    assert juno.get(pair.options(num_returns=2).remote(1, b=2)) == [1, 2]


def test_wrong_task_arguments_raise_at_the_call(cluster):
    raises(lambda: add.remote(), "add() missing a required argument: 'a'")
    raises(lambda: add.remote(1, 2, 3), "add() too many positional arguments")
    raises(lambda: add.remote(1, scal=2), "add() got an unexpected keyword argument 'scal'")
    raises(lambda: add.remote(1, a=1), "add() multiple values for argument 'a'")
    raises(lambda: add.options(num_cpus=0).remote(), "add() missing a required argument: 'a'")
    raises(lambda: collect.remote(x=1), "collect() missing a required argument: 'first'")
    raises(lambda: countdown.remote(), "countdown() missing a required argument: 'n'")
    raises(lambda: pair.remote(1), "pair() missing a required argument: 'b'")


def test_wrong_constructor_arguments_raise_at_the_call(cluster):
    raises(lambda: Account.remote(), "Account.__init__() missing a required argument: 'owner'")
    raises(lambda: Account.remote("ann", 1, "USD"), "Account.__init__() too many positional arguments")
    raises(lambda: Account.options(name="x").remote("ann", currncy="USD"),
           "Account.__init__() got an unexpected keyword argument 'currncy'")


def test_actor_method_calls_that_fit_run(cluster):
    acct = Account.remote("ann", 5, currency="USD")
    assert juno.get(acct.deposit.remote(1)) == 6
    assert juno.get(acct.deposit.remote(amount=1, note="x")) == 7
    assert juno.get(acct.history.remote(1, 2, 3)) == 6
    assert juno.get(acct.audit.remote(2, verbose=True)) == (2, True)
    assert [juno.get(r) for r in acct.ticks.remote(2)] == [0, 1]
    assert juno.get(list(acct.split.remote(5))) == [2, 3]
    assert juno.get(acct.deposit.options(num_returns=1).remote(1)) == 8
    assert juno.get(acct.fee_for.remote(3)) == 6  # static and class methods, as in Ray
    assert juno.get(acct.fee.remote(times=2)) == 4


def test_wrong_actor_method_arguments_raise_at_the_call(cluster):
    acct = Account.remote("ann")
    raises(lambda: acct.deposit.remote(), "Account.deposit() missing a required argument: 'amount'")
    raises(lambda: acct.deposit.remote(1, 2, 3), "Account.deposit() too many positional arguments")
    raises(lambda: acct.deposit.remote(1, amount=2), "Account.deposit() multiple values for argument 'amount'")
    raises(lambda: acct.history.remote(x=1), "Account.history() got an unexpected keyword argument 'x'")
    raises(lambda: acct.audit.remote(), "Account.audit() missing a required argument: 'level'")
    raises(lambda: acct.audit.remote(1, True), "Account.audit() too many positional arguments")
    raises(lambda: acct.ticks.remote(), "Account.ticks() missing a required argument: 'n'")
    raises(lambda: acct.split.options(num_returns=2).remote(), "Account.split() missing a required argument: 'amount'")
    raises(lambda: acct.fee_for.remote(), "Account.fee_for() missing a required argument: 'amount'")
    raises(lambda: acct.fee.remote(1, 2), "Account.fee() too many positional arguments")
    # The actor never saw the wrong calls and is fine.
    assert juno.get(acct.deposit.remote(3)) == 3


def test_handles_from_get_actor_check_arguments_too(cluster):
    named = Account.options(name="checked-account").remote("eve")
    found = juno.get_actor("checked-account")
    raises(lambda: found.deposit.remote(note="x"), "Account.deposit() missing a required argument: 'amount'")
    assert juno.get(found.deposit.remote(5, note="x")) == 5
    juno.kill(named)


def test_handles_passed_to_tasks_check_arguments_too(cluster):
    @juno.remote
    def misuse(acct):
        try:
            acct.deposit.remote()
        except TypeError as e:
            return str(e)
        return "accepted"

    assert juno.get(misuse.remote(Account.remote("bob"))) == \
        "Account.deposit() missing a required argument: 'amount'"
