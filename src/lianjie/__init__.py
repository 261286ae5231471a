"""lianjie (连接): private-domain retail operations, one customer across every channel."""

__version__ = "0.1.0"
