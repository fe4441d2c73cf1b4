"""supervisord's (group, process) names over corral's instances, both ways (pure).

supervisorctl, its `group:*` and the exporters key everything on
supervisord's names, so they must be exactly the ones supervisord gives
the same config:
- A TOML service is a group, its instances the processes: `web` is group
  web, process web; `work:0` (numprocs = 2) is group work, process 0.
- A supervisord.conf keeps supervisord's own groups. Its loader makes one
  service per process, named by process_name, and lists the groups in
  Config.master.xmlrpc.groups: [program:web] with numprocs = 2 gives
  services web_0 and web_1 in group web (`web:web_0`), and [group:shop]
  with programs = web,db gives `shop:web` and `shop:db`.
Names are made once per Config (a reload brings a new one).
"""

DEFAULT_PRIORITY = 999


class Names:
    def __init__(self, config, instances=None):
        """instances(service) -> its instance names now (a scale's count), or
        the config's numprocs when None (a config not yet in force)."""
        xmlrpc = config.master.xmlrpc
        rows = getattr(xmlrpc, "groups", ())
        priorities = dict(getattr(xmlrpc, "priorities", ()))
        grouped = {service: (group, priority) for group, priority, services in rows
                   for service in services}
        self.where = {}  # instance -> (group, process), in priority (start) order
        self.instance = {}  # (group, process) -> instance
        self.members = {}  # group -> [instance, ...] in config order
        self.services = {}  # group -> frozenset of service names
        self.priority = {}  # group -> its priority
        self.process_priority = {}  # instance -> its program's priority
        self.logfiles = {}  # instance -> (stdout file, stderr file): supervisord.conf's
        for spec in config.services:
            group, priority = grouped.get(spec.name, (spec.name, DEFAULT_PRIORITY))
            for instance in instances(spec.name) if instances else spec.instance_names():
                if spec.name in grouped:
                    process = instance  # one service per supervisord process
                else:
                    process = instance if instance == spec.name else \
                        instance[len(spec.name) + 1:]
                self.where[instance] = (group, process)
                self.instance[(group, process)] = instance
                self.members.setdefault(group, []).append(instance)
                self.process_priority[instance] = priorities.get(spec.name, priority)
                files = {f.stream: f.path for f in spec.stream_files}
                self.logfiles[instance] = (files.get("out", ""), files.get("err", ""))
            self.services[group] = self.services.get(group, frozenset()) | {spec.name}
            self.priority[group] = priority
        self.rank = {instance: i for i, instance in enumerate(self.where)}

    def of(self, instance):
        """(group, process) of an instance."""
        return self.where.get(instance, (instance, instance))

    def namespec(self, instance):
        """supervisorctl's name for it: `process` alone when it is its own group."""
        group, process = self.of(instance)
        return process if group == process else f"{group}:{process}"


def group_diff(old, new, services):
    """reloadConfig's (added, changed, removed) group names, from the Names of
    the config in force and of the file now, and the service-level diff
    (Operations.preview): a group changed when one of its services did,
    or its members or priority did."""
    touched = set(services["added"]) | set(services["removed"]) | set(services["changed"]) | \
        set(services.get("scaled", ()))  # supervisord restarts a group whose numprocs changed
    added = [g for g in new.members if g not in old.members]
    removed = [g for g in old.members if g not in new.members]
    changed = [g for g in new.members if g in old.members and (
        old.services[g] != new.services[g] or old.priority[g] != new.priority[g]
        or touched & new.services[g])]
    return added, changed, removed
