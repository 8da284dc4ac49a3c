"""Registry verbs: ``list-tags``, ``login``, ``logout`` (skopeo's flags and output)."""

from __future__ import annotations

from .common import add_registry_flags, add_retry_flags, context, tls_verify_arg


VERBS = ("list-tags", "login", "logout")


def register(subparsers, only: str | None = None) -> None:
    """Add this area's verbs (only ``only``, when given)."""
    if only in (None, "list-tags"):
        _add_list_tags(subparsers)
    if only in (None, "login"):
        _add_login(subparsers)
    if only in (None, "logout"):
        _add_logout(subparsers)


def _add_list_tags(subparsers) -> None:
    sp = subparsers.add_parser("list-tags", help="list the tags of a repository",
                               description="List the tags of docker://REGISTRY/REPOSITORY, or of the images "
                                           "in docker-archive:PATH, as JSON.")
    sp.add_argument("repository", metavar="SOURCE-IMAGE",
                    help="docker://REGISTRY/REPOSITORY (no tag), or docker-archive:PATH")
    add_registry_flags(sp)
    sp.add_argument("--authfile", metavar="PATH", help="path of the authentication file")
    add_retry_flags(sp)
    sp.set_defaults(func=list_tags_cmd)


def _add_login(subparsers) -> None:
    sp = subparsers.add_parser("login", help="log in to a registry and store the credentials",
                               description="Check credentials against REGISTRY and save them in the auth file.")
    sp.add_argument("registry", metavar="REGISTRY", nargs="?", help="registry host[:port][/namespace]")
    sp.add_argument("-u", "--username", metavar="USER", help="user name for the registry")
    sp.add_argument("-p", "--password", metavar="PASSWORD", help="password for the registry")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sp.add_argument("--get-login", action="store_true", help="print the user name stored for REGISTRY")
    sp.add_argument("--authfile", metavar="PATH", help="path of the authentication file")
    sp.add_argument("--tls-verify", type=tls_verify_arg, nargs="?", const=True, default=None, metavar="BOOL",
                    help="require HTTPS and verify certificates (default true)")
    sp.add_argument("--cert-dir", metavar="DIR", help="certificates (*.crt, *.cert, *.key) for the registry")
    sp.add_argument("-v", "--verbose", action="store_true", help="say which auth file was written")
    add_retry_flags(sp)
    sp.set_defaults(func=login_cmd, exit_map={"default": 125})  # podman's and buildah's status for a failed login


def _add_logout(subparsers) -> None:
    sp = subparsers.add_parser("logout", help="remove stored credentials for a registry",
                               description="Remove the credentials of REGISTRY (or all, with --all) from the auth file.")
    sp.add_argument("registry", metavar="REGISTRY", nargs="?", help="registry host[:port][/namespace]")
    sp.add_argument("-a", "--all", action="store_true", help="remove the credentials of every registry")
    sp.add_argument("--authfile", metavar="PATH", help="path of the authentication file")
    sp.add_argument("--tls-verify", type=tls_verify_arg, nargs="?", const=True, default=None, metavar="BOOL",
                    help="accepted for compatibility; logout does not contact the registry")
    sp.set_defaults(func=logout_cmd)


def list_tags_cmd(args) -> int:
    from ..errors import UsageError
    from ..oci import reference
    from ..transports.docker import list_tags
    from .common import print_json

    text = args.repository
    if text.startswith("docker-archive:"):  # skopeo lists the tags of every image in the archive
        from ..transports import docker_archive

        print_json({"Tags": docker_archive.list_tags(docker_archive.parse(text[len("docker-archive:"):]),
                                                     context(args))})
        return 0
    if not text.startswith("docker://"):
        transport = text.split(":", 1)[0] if ":" in text else text
        raise UsageError(f"list-tags: unsupported transport in {text!r} (want docker://REGISTRY/REPOSITORY "
                         "or docker-archive:PATH)"
                         if ":" in text else f"list-tags: {transport!r} is not docker://REGISTRY/REPOSITORY")
    from ..errors import InvalidReference

    try:
        named = reference.parse(text[len("docker://"):])
    except InvalidReference as e:
        raise InvalidReference(f"invalid image name {text!r}: {e}") from None
    if named.tag or named.digest:
        raise UsageError(f"list-tags: no tag or digest allowed in reference {text!r}")
    ctx = context(args)
    tags = list_tags(named, ctx)
    print_json({"Repository": named.name, "Tags": tags})
    return 0


def _read_password(args) -> str | None:
    import sys

    if args.password_stdin:
        if args.password is not None:
            from ..errors import UsageError

            raise UsageError("--password and --password-stdin cannot be used together")
        return sys.stdin.read().rstrip("\r\n")
    return args.password


def login_cmd(args) -> int:
    import sys

    from ..errors import UsageError
    from ..transports import credentials
    from ..transports.docker import login

    ctx = context(args)
    if not args.registry:
        raise UsageError("login: a registry is required (e.g. pallet login registry.example.com)")
    if args.get_login:
        from ..transports.docker import split_login_key

        _, key = split_login_key(args.registry)
        user = credentials.get_username(key, ctx)
        if user is None:
            raise UsageError(f"not logged into {key}")
        print(user)
        return 0
    password = _read_password(args)
    username = args.username
    if username is None:
        if args.password_stdin or not sys.stdin.isatty():
            raise UsageError("login: --username is required when the password is not typed at a terminal")
        username = input("Username: ").strip()
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("login: --password or --password-stdin is required without a terminal")
        import getpass

        password = getpass.getpass("Password: ")
    path = login(args.registry, username, password, ctx)
    if args.verbose:
        print(f"Used: {path}")
    print("Login Succeeded!")
    return 0


def logout_cmd(args) -> int:
    from ..errors import UsageError
    from ..transports.docker import logout

    ctx = context(args)
    if args.all:
        if args.registry:
            raise UsageError("logout: --all takes no registry")
        logout(None, ctx, all=True)
        print("Removed login credentials for all registries")
        return 0
    if not args.registry:
        raise UsageError("logout: a registry is required (or --all)")
    from ..transports.docker import split_login_key

    _, key = split_login_key(args.registry)
    logout(args.registry, ctx)
    print(f"Removed login credentials for {key}")
    return 0
