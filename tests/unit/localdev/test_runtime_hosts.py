from mlcycle.localdev.runtime_hosts import PodAddress, hosts_files, service_ports


def svc(name, ns, selector, **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector, **spec}}


def test_pod_and_service_names():
    pods = [PodAddress("a", "job-0-x", "127.0.0.2", "job-0", "job", {"app": "job"}, ready=True),
            PodAddress("a", "job-1-x", "127.0.0.3", "job-1", "job", {"app": "job"}, ready=True),
            PodAddress("b", "web", "127.0.0.4", "web", "", {"app": "web"}, ready=False)]
    services = [svc("job", "a", {"app": "job"}, clusterIP="None"), svc("web", "b", {"app": "web"}),
                svc("web-all", "b", {"app": "web"}, publishNotReadyAddresses=True), svc("none", "a", {})]
    files = hosts_files(pods, services)
    assert set(files) == {"a", "b"}
    a = files["a"].splitlines()
    assert "127.0.0.2 job-0.job.a.svc.cluster.local job-0.job.a.svc job-0.job.a job-0.job job-0" in a
    assert "127.0.0.2 job.a.svc.cluster.local job.a.svc job.a job" in a  # first ready pod by name
    assert "127.0.0.4 web\n" not in files["a"]  # another namespace's short names stay there
    b = files["b"]
    assert "127.0.0.2 job-0.job.a.svc.cluster.local job-0.job.a.svc job-0.job.a\n" in b  # qualified only
    assert "web.b.svc.cluster.local" not in b.replace("web-all.b", "")  # not ready: no address
    assert "127.0.0.4 web-all.b.svc.cluster.local web-all.b.svc web-all.b web-all" in b
    assert "none." not in files["a"]


def test_service_ports_translate_where_target_differs():
    pods = [PodAddress("a", "web-1", "127.0.0.3", "web-1", labels={"app": "web"}, ready=True, ports={"http": 8080}),
            PodAddress("a", "web-0", "127.0.0.2", "web-0", labels={"app": "web"}, ready=False, ports={"http": 8080})]
    services = [svc("web", "a", {"app": "web"}, ports=[{"port": 80, "targetPort": "http"},
                                                      {"port": 9090, "targetPort": 9090},
                                                      {"port": 81, "targetPort": 8081},
                                                      {"port": 53, "targetPort": 5353, "protocol": "UDP"}])]
    assert service_ports(pods, services) == "127.0.0.3 80 8080\n127.0.0.3 81 8081\n"
