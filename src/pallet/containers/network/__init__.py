"""Container networks as podman 4 makes them: netavark's JSON network definitions in pallet's
own directory (``config``), subnets chosen clear of the host's routes (``subnets``), podman's
``-p`` grammar (``ports``), persistent network namespaces (``netns``), ``netavark setup`` /
``teardown`` (``netavark``) and the attachments with their addresses (``endpoints``)."""
