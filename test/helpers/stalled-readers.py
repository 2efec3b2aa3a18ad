# Clients that ask for a response and never read it: COUNT sockets with small receive buffers (so the server's
# writes back up at once), each sending one request. Prints "connected N" once every request is sent, then holds
# the sockets until its stdin closes. Node cannot set SO_RCVBUF on a TCP socket, hence Python.
import socket
import sys

host, port, path, auth, accept, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nAccept: {accept}\r\n\r\n".encode()
sockets = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(request)
    sockets.append(s)
print(f"connected {len(sockets)}", flush=True)
sys.stdin.read()
for s in sockets:
    s.close()
