"""The stand-in room: pallet's replacements for standard-library modules that cost start-up time.

Each module does what the module it replaces does, for what pallet uses, over that module's C
extension (or none), and has a differential test against the original (tests/std/test_std_*.py):

- ``json``: ``json``'s loads/dumps over ``_json`` (``json`` imports ``re``);
- ``args``: ``argparse``'s interface, hand-written (``argparse`` imports ``re``, ``gettext``);
- ``http``: HTTP/1.1 with keep-alive, chunked bodies, proxies, over ``_socket``, and TLS over
  ``_ssl`` set up as ``ssl.create_default_context()`` does (``http.client`` imports ``email``,
  ``ssl.py`` costs a third of a remote inspect);
- ``syscalls``: the Linux syscalls ``os`` lacks, through ``_ctypes`` (``ctypes`` defines every C type);
- ``sock``: ``socket``'s unix and inet sockets and socket pairs, over ``_socket`` (``socket`` builds
  enums and imports ``selectors``);
- ``futures``: ``concurrent.futures``' one function in a thread and its result (a pool's
  imports: ``logging``, ``queue``...);
- ``proc``: ``subprocess``'s ``Popen``/``run`` for conmon, the OCI runtime and netavark, over
  ``os.posix_spawn`` (``subprocess`` imports ``locale``, ``re``, ``threading``, ``selectors``);
- ``importer``: importlib's path finder and pyc loader for ``pallet.*`` modules in half its
  instructions (``pallet-runtime`` installs it: ~35 modules on each container start);
- ``ctypes_util``: a ``ctypes.util`` whose ``find_library`` answers without running ldconfig,
  put in ``sys.modules`` while pyseccomp is imported.

Only these modules may import ``_json``, ``_socket``, ``_ssl``, ``_ctypes`` or put a module into
``sys.modules`` (tests/test_layering.py checks it). Their private names may be used from anywhere.
"""
