"""How processes talk: the ZeroMQ transport (the only module that imports zmq), rpc, the cluster token."""
