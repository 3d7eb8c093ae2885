"""Groups of ranks that solve RVEs together (``ranks_per_rve``).

The ranks of a communicator are split into groups of k consecutive ranks (rank r is member
r mod k of group r div k). Each group holds its own copy of the RVE, distributed over its k
ranks by DOLFINx (the same partition in every group: the same mesh read the same way on the
same number of ranks), and solves its share of the RVE work with all its members; work is
shared out between groups. k = 1: every rank solves RVEs on its own (``MPI.COMM_SELF``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpi4py import MPI

from fe2.errors import InputError


@dataclass(frozen=True)
class RankGroups:
    """The split of ``comm`` into groups of ``size`` ranks.

    Attributes:
        comm: the whole communicator.
        size: ranks per group k.
        group: this rank's group (``MPI.COMM_SELF`` for k = 1).
        index: this rank's group number; count: the number of groups.
    """

    comm: MPI.Comm
    size: int
    group: MPI.Comm
    index: int
    count: int

    @property
    def member(self) -> int:
        """This rank's rank within its group."""
        return self.comm.rank % self.size

    @property
    def leader(self) -> bool:
        """This rank is the first of its group (it speaks for the group)."""
        return self.member == 0

    def ranks_of(self, group: int) -> range:
        """The ranks (of ``comm``) of a group."""
        return range(group * self.size, (group + 1) * self.size)


def split_ranks(comm: MPI.Comm, size: int, *, key: str = "parallel.ranks_per_rve") -> RankGroups:
    """Groups of ``size`` ranks (collective); ``size`` must divide the number of ranks.

    Raises:
        InputError: naming ``key``, on every rank.
    """
    if size < 1 or comm.size % size:
        raise InputError(f"{key}: {size} ranks per RVE do not divide the {comm.size} ranks of the run")
    if size == 1:
        return RankGroups(comm=comm, size=1, group=MPI.COMM_SELF, index=comm.rank, count=comm.size)
    index = comm.rank // size
    group = comm.Split(color=index, key=comm.rank)
    return RankGroups(comm=comm, size=size, group=group, index=index, count=comm.size // size)
