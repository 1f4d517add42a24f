defmodule IommapExampleTest do
  use ExUnit.Case

  setup do
    path = Path.join(System.tmp_dir!(), "iommap-ex-#{System.unique_integer([:positive])}.dat")
    on_exit(fn -> File.rm(path) end)
    {:ok, path: path}
  end

  test "quick start", %{path: path} do
    assert {:ok, "hello from elixir"} = IommapExample.write_and_read(path, "hello from elixir")
  end

  test "errors are values", %{path: path} do
    assert {:error, :enoent} = :iommap.open(path, :read, [])
    {:ok, h} = :iommap.open(path, :read_write, [:create, {:size, 10}])
    assert {:error, :out_of_bounds} = :iommap.pread(h, 5, 6)
    assert :ok = :iommap.close(h)
    assert {:error, :closed} = :iommap.close(h)
    assert_raise ArgumentError, fn -> :iommap.pread(h, :nope, 1) end
  end

  test "many processes at once", %{path: path} do
    {:ok, h} = :iommap.open(path, :read_write, [:create, {:size, 64 * 100}])

    1..100
    |> Task.async_stream(fn i ->
      rec = String.pad_trailing("task #{i}", 64, <<0>>)
      :ok = :iommap.pwrite(h, i * 64 - 64, rec)
      {:ok, ^rec} = :iommap.pread(h, i * 64 - 64, 64)
    end, max_concurrency: 16)
    |> Enum.each(fn {:ok, _} -> :ok end)

    {:ok, all} = :iommap.pread(h, 0, 6400)
    assert String.starts_with?(all, "task 1")
    assert binary_part(all, 99 * 64, 8) == "task 100"
    :ok = :iommap.close(h)
  end
end
