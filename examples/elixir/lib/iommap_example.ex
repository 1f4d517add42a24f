defmodule IommapExample do
  @moduledoc "A shared counter page: the quick start of the README, in Elixir."

  def write_and_read(path, text) do
    {:ok, h} = :iommap.open(path, :read_write, [:create, {:size, 4096}])
    :ok = :iommap.pwrite(h, 0, text)
    result = :iommap.pread(h, 0, byte_size(text))
    :ok = :iommap.close(h)
    result
  end
end
