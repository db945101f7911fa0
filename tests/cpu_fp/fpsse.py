def run(*a): raise KeyError(a[0])
