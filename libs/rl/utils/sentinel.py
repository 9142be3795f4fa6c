"""RLlib's ``NotProvided``: a keyword argument the caller left out (``None`` can be a real value)."""


class _NotProvidedType:
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NotProvided"

    def __reduce__(self):
        return (_NotProvidedType, ())

    def __bool__(self) -> bool:
        return False


NotProvided = _NotProvidedType()
