"""The actor class stands for the user's class: its class attributes, static and class
methods (inherited ones too) are reachable through it, in the driver and inside the
actor's own methods, and dir()/help() show them."""
from __future__ import annotations

import pydoc

import pytest

import juno

JUNO_SHARED_INIT = {"num_cpus": 2}


def make_tally():
    """Defined in a function, as in Ray's tests: the worker can't import this module, so
    the classes travel by value."""

    class Grandparent:
        GRANDPARENT = 2

        @staticmethod
        def grandparent_static():
            return 1

    class Parent1(Grandparent):
        PARENT1 = 6

        @staticmethod
        def parent1_static():
            return 2

    class Parent2:
        PARENT2 = 7

    @juno.remote
    class Tally(Parent1, Parent2):
        """Counts things."""

        X = 3

        @staticmethod
        def double(x):
            return 2 * x

        @classmethod
        def scaled(cls, x):
            return cls.X * x

        def everything(self):
            """Reads the class through its name, as Ray's tests do."""
            return (Tally.GRANDPARENT, Tally.PARENT1, Tally.PARENT2, Tally.X, Tally.double(2),
                    Tally.scaled(2), Tally.grandparent_static(), Tally.parent1_static())

    return Tally


EVERYTHING = (2, 6, 7, 3, 4, 6, 1, 2)


def test_class_attributes_through_the_actor_class_inside_methods(cluster):
    t = make_tally().remote()
    assert juno.get(t.everything.remote()) == EVERYTHING


def test_class_attributes_through_the_actor_class_in_the_driver():
    Tally = make_tally()
    assert (Tally.GRANDPARENT, Tally.PARENT1, Tally.PARENT2, Tally.X) == (2, 6, 7, 3)
    assert (Tally.double(2), Tally.scaled(2), Tally.grandparent_static()) == (4, 6, 1)
    assert Tally.everything.__doc__ == "Reads the class through its name, as Ray's tests do."
    with pytest.raises(AttributeError, match="actor class 'Tally' has no attribute 'nothing'"):
        Tally.nothing  # noqa: B018


def test_dir_and_help_show_the_users_class():
    Tally = make_tally()
    public = {name for name in dir(Tally) if not name.startswith("_")}
    assert {"remote", "options", "everything", "double", "scaled", "X", "GRANDPARENT", "PARENT2"} <= public
    text = pydoc.render_doc(Tally, renderer=pydoc.plaintext)
    assert "Counts things." in text
    assert "everything()  -- Reads the class through its name" in text
    assert "double(x)" in text and "scaled(x)" in text


def test_handle_dir_lists_the_methods(cluster):
    t = make_tally().remote()
    assert {"everything", "double", "scaled"} <= set(dir(t))


def test_inheriting_from_an_actor_class_is_a_clear_type_error():
    Tally = make_tally()
    with pytest.raises(TypeError, match="Inheriting from actor classes is not currently supported"):
        class More(Tally):  # noqa: F811
            pass
