// Builds the etcd server binary used by the integration tests (see ../build.sh).
module yurthub.test/kube/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
