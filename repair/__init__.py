"""``make repair``: a stack made whole again after an interrupted deploy (``__main__``)."""
